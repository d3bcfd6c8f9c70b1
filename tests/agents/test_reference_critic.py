import pytest

from gaptune.agents.reference_critic import ReferenceTeacher
from gaptune.data.attempt import Attempt
from gaptune.data.world.world import task_split
from gaptune.training.answer_parsing import parse_output


def _attempt(sample_id: str, output: str) -> Attempt:
    steps, answer = parse_output(output)
    return Attempt(sample_id=sample_id, output=output, steps=steps, answer=answer, correct=False)


def test_first_differing_step_and_its_skill() -> None:
    sample = task_split("colour-count", "probe", size=1)[0]
    gold = [s.text for s in sample.steps]
    wrong = [gold[0], gold[1], "count red = 7"]
    critique = ReferenceTeacher().critique(sample, _attempt(sample.id, "; ".join(wrong) + "; answer: 7"))
    assert critique.wrong_step == 2 and critique.missing_skill == "counting"
    assert "count red = 7" in critique.explanation
    early = ReferenceTeacher().critique(sample, _attempt(sample.id, "nonsense; answer: 1"))
    assert early.wrong_step == 0 and early.missing_skill == sample.steps[0].skill


def test_right_steps_wrong_answer_blames_the_last_step() -> None:
    sample = task_split("compare-counts", "probe", size=1)[0]
    flipped = "yes" if sample.answer == "no" else "no"
    reasoning = "; ".join(s.text for s in sample.steps) + f"; answer: {flipped}"
    critique = ReferenceTeacher().critique(sample, _attempt(sample.id, reasoning))
    assert critique.wrong_step == len(sample.steps) and critique.missing_skill == sample.steps[-1].skill


def test_data_without_gold_steps_is_a_clear_error() -> None:
    sample = task_split("compare-counts", "probe", size=1)[0].model_copy(update={"steps": None})
    with pytest.raises(ValueError, match="no gold rationale steps"):
        ReferenceTeacher().critique(sample, _attempt(sample.id, "answer: no"))
