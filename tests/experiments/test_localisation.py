"""Critics' localisation, scored from recorded critiques against the world's first wrong step."""

from __future__ import annotations

from gaptune.data.records import Critique
from gaptune.data.sample import Sample, format_reasoning
from gaptune.data.world.world import task_split
from gaptune.experiments.localisation import ONLY_ANSWER, localisation_markdown, score_critiques
from gaptune.experiments.spec import Cell
from gaptune.graph.events import CritiqueEvent, CritiqueInputs


def _critique(sample: Sample, steps: list[str], answer: str, blamed: int, critic: str, round_: int = 1,
              ) -> CritiqueEvent:
    return CritiqueEvent(
        event_id=f"{round_}/critique/{sample.id}/{critic}", round=round_, agent=critic,
        inputs=CritiqueInputs(case=sample.id, student_output=format_reasoning(steps, answer)),
        output=Critique(sample_id=sample.id, teacher=critic, method="answer-switch", wrong_step=blamed,
                        missing_skill="x"))


def test_a_critique_is_located_only_where_it_blames_the_first_step_that_leaves_the_gold_one() -> None:
    probe = task_split("big-colour-count", "probe", 0, 3)
    first, second, third = probe
    gold = [[step.text for step in s.steps or []] for s in probe]
    assert [step.skill for step in first.steps or []] == ["size", "colour", "counting"]
    cell = Cell(student="s", budget=10, arm="error-driven", seed=3)
    events = [
        # the colour step is wrong (and so the count after it): blaming it is located, blaming the count is not
        _critique(first, [gold[0][0], "colour at x = nothing", gold[0][2]], "99", blamed=1, critic="world"),
        _critique(second, [gold[1][0], "colour at x = nothing", gold[1][2]], "99", blamed=2, critic="world"),
        # every step right, only the answer wrong: the true step is the answer
        _critique(third, gold[2], "99", blamed=3, critic="world"),
        # another critic on the same case is scored on its own
        _critique(first, [gold[0][0], "colour at x = nothing", gold[0][2]], "99", blamed=1, critic="reader"),
        # a later round is not the base student's error and is left out
        _critique(second, gold[1], "99", blamed=0, critic="world", round_=2),
    ]
    world, reader = sorted(score_critiques(cell, {s.id: s for s in probe}, events), key=lambda r: r.critic != "world")
    assert (world.critic, world.cases, world.located) == ("world", 3, 2)
    assert world.truth == {"colour": 2, ONLY_ANSWER: 1}
    assert world.blamed == {"colour": 1, "counting": 1, ONLY_ANSWER: 1}
    assert (reader.cases, reader.located, reader.rate) == (1, 1, 1.0)

    table = localisation_markdown([world, reader, world.model_copy(update={
        "cell": cell.model_copy(update={"seed": 4}), "located": 0})])
    assert f"| s | world | {cell.arm} | 2 | 6 | 33% | 3: 67%, 4: 0% | colour 67%, answer only 33% |" in table
    assert f"| s | reader | {cell.arm} | 1 | 1 | 100% | 3: 100% |" in table
