"""The label-blind reader teacher: locates the wrong step by text and names the skill in words, not labels."""

from __future__ import annotations

import pytest

from gaptune.agents.step_reader import StepReaderTeacher, read_step
from gaptune.data.attempt import Attempt
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import TASKS, task_split, world_sample
from gaptune.tools.classify_gaps import classify_gaps
from gaptune.training.answer_parsing import parse_output


def _attempt(sample_id: str, output: str) -> Attempt:
    steps, answer = parse_output(output)
    return Attempt(sample_id=sample_id, output=output, steps=steps, answer=answer, correct=False)


def test_readings_never_repeat_a_skill_label_yet_classify_onto_the_right_gap() -> None:
    steps = [step for i in range(600) for step in world_sample(0, "pool", i).steps or []]
    steps += [step for task in TASKS for sample in task_split(task, "probe", size=30) for step in sample.steps or []]
    readings = {step.text: read_step(step.text) for step in steps}
    assert not any(reading in SKILL_DESCRIPTIONS for reading in readings.values())
    mapping = {m.text: m for m in classify_gaps(sorted(set(readings.values())), SKILL_DESCRIPTIONS).mapping}
    matched = sum(mapping[readings[step.text]].label == step.skill for step in steps)
    assert matched == len(steps), "every world step's reading maps back onto its own skill"
    # never the label itself; a reading may share the label's stemmed words ("comparing" ~ "comparison")
    assert all(m.how in ("embedding", "contains") for m in mapping.values()), "the mapping is not a string identity"


def test_first_wrong_step_is_located_by_text() -> None:
    sample = task_split("colour-count", "probe", size=1)[0]
    gold = [s.text for s in sample.steps]
    critique = StepReaderTeacher().critique(sample, _attempt(sample.id, f"{gold[0]}; {gold[1]}; count red = 7; answer: 7"))
    assert critique.wrong_step == 2 and critique.missing_skill == read_step(gold[2])
    assert "count red = 7" in critique.explanation and critique.method == "reader/first-wrong"


def test_random_step_ablation_is_seeded_by_the_case() -> None:
    samples = task_split("relative-position", "probe", size=40)
    reader = StepReaderTeacher("ablation", locate="random")
    first = [reader.critique(s, _attempt(s.id, "answer: no")).wrong_step for s in samples]
    assert first == [reader.critique(s, _attempt(s.id, "answer: no")).wrong_step for s in samples]
    assert set(first) == {0, 1, 2}, "draws spread over every gold step, whatever the student wrote"


def test_data_without_gold_steps_is_a_clear_error() -> None:
    sample = task_split("compare-counts", "probe", size=1)[0].model_copy(update={"steps": None})
    with pytest.raises(ValueError, match="no gold rationale steps"):
        StepReaderTeacher().critique(sample, _attempt(sample.id, "answer: no"))
