"""The pre-registered contrasts on constructed runs with known differences, and the crossover arms' run configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaptune.experiments.contrasts import contrasts_markdown, measured_contrasts
from gaptune.experiments.results import Finished
from gaptune.experiments.spec import Cell, ContrastSpec, EfficiencySpec, TeacherRecipe, cell_overrides
from gaptune.graph.config import load_config

STUDENTS = {"count-weak": "count-rare", "size-weak": "size-rare-2"}
ITEMS = 10


def _spec(**update: object) -> EfficiencySpec:
    fields: dict[str, object] = {
        "task": "big-colour-count", "students": STUDENTS, "arms": ["error-driven", "random", "swap"],
        "first_seed_arms": [], "extra_budgets": [], "seeds": [0, 1, 2], "bootstrap_resamples": 500,
        "contrasts": [ContrastSpec(arm="error-driven", minus="swap", across_students=True, primary=True),
                      ContrastSpec(arm="error-driven", minus="random")]}
    return EfficiencySpec.model_validate({**fields, **update})


def _run(student: str, arm: str, seed: int, right: int) -> Finished:
    """A run whose first `right` test items are correct (the base student gets the first 2)."""
    return Finished(cell=Cell(student=student, budget=800, arm=arm, seed=seed), base_test=0.2, test=right / ITEMS,
                    val=0.0, stop_reason="", used=[], gaps={}, diagnosis={},
                    test_correct=[i < right for i in range(ITEMS)], base_correct=[i < 2 for i in range(ITEMS)],
                    wall_s=None)


def _rows() -> list[Finished]:
    # own - swap: count-weak +2, +1, +3 items (of 10) per seed; size-weak +1 in every seed. random trails by 4 items.
    rows = []
    for seed, own_gain in enumerate([2, 1, 3]):
        rows += [_run("count-weak", "error-driven", seed, 6), _run("count-weak", "swap", seed, 6 - own_gain),
                 _run("count-weak", "random", seed, 2),
                 _run("size-weak", "error-driven", seed, 7), _run("size-weak", "swap", seed, 6),
                 _run("size-weak", "random", seed, 3)]
    return rows


def test_the_interaction_sums_both_students_own_minus_swap_per_seed() -> None:
    measured = {(c.minus, student): result for c, student, result in measured_contrasts(_spec(), _rows())}
    assert set(measured) == {("swap", "both"), ("random", "count-weak"), ("random", "size-weak")}
    interaction = measured["swap", "both"]
    assert interaction.per_seed == pytest.approx({0: 0.3, 1: 0.2, 2: 0.4})
    assert interaction.mean == pytest.approx(0.3)
    assert interaction.low <= 0.3 <= interaction.high and interaction.low > 0
    # the same difference in every seed and item pattern: no seed variance, so the interval is the items' alone
    assert measured["random", "count-weak"].per_seed == pytest.approx({0: 0.4, 1: 0.4, 2: 0.4})
    text = contrasts_markdown(_spec(), _rows())
    assert "3 of the 3 registered contrasts have runs" in text
    assert "Primary endpoint: +30.0 points" in text and "interval excludes 0" in text


def test_an_interaction_waits_for_both_students() -> None:
    rows = [r for r in _rows() if r.cell.student == "count-weak"]
    measured = measured_contrasts(_spec(), rows)
    assert [(c.minus, student) for c, student, _ in measured] == [("random", "count-weak")]
    assert "Primary endpoint" not in contrasts_markdown(_spec(), rows)


@pytest.mark.parametrize(("update", "message"), [
    ({"contrasts": [ContrastSpec(arm="error-driven", minus="knn")]}, "'knn' is not an arm of this spec"),
    ({"contrasts": [ContrastSpec(arm="error-driven", minus="swap", primary=True),
                    ContrastSpec(arm="error-driven", minus="random", primary=True)]}, "at most one is the primary"),
    ({"arms": ["error-driven", "static-50-50"], "contrasts": []}, "static-50-50 arm needs static_split"),
])
def test_a_spec_that_cannot_be_measured_is_refused(update: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(**update)


def test_crossover_arms_configure_their_critic_world_and_split(tmp_path: Path) -> None:
    spec = _spec(arms=["error-driven", "reader", "static-50-50", "oracle"], contrasts=[],
                 static_split=["size", "counting"], seed_sets_student_world=True, teacher=TeacherRecipe())
    teacher = tmp_path / "teacher"

    def config(arm: str):  # type: ignore[no-untyped-def]
        cell = Cell(student="size-weak", budget=800, arm=arm, seed=3)
        return load_config(None, cell_overrides(spec, tmp_path, cell, teacher))

    headline = config("error-driven")
    assert headline.student.tiny.world_seed == 3 and headline.student.tiny.mix == "size-rare-2"
    assert [(c.backend, getattr(c, "model", None)) for c in headline.teacher.critics] == [("world", str(teacher))]
    assert [c.backend for c in config("reader").teacher.critics] == ["reader"]
    assert [c.backend for c in config("oracle").teacher.critics] == ["reference"]
    split = config("static-50-50")
    assert split.selection == "skill-mix" and split.selector_options == {"skills": {"size": 1, "counting": 1}}
    with pytest.raises(ValueError, match="build it first"):
        cell_overrides(spec, tmp_path, Cell(student="size-weak", budget=800, arm="reader", seed=0))
    assert load_config(None, cell_overrides(_spec(), tmp_path, Cell(student="size-weak", budget=800, arm="random",
                                                                      seed=3))).student.tiny.world_seed == 0
