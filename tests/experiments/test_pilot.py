"""The crossover pilot: go-criteria from measured base students, its report, and a real run on tiny students
with the world teacher, resumable per student."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from gaptune.experiments import pilot
from gaptune.experiments.pilot import CrossoverSpec, StudentPilot, go_criteria, pilot_markdown, run_pilot

SPEC = {
    "task": "big-colour-count",
    "students": {"count-weak": "count-rare", "size-weak": "size-rare"},
    "rare_skill": {"count-weak": "counting", "size-weak": "size"},
    "pilot": {"seed": 100, "probe_size": 200, "go_criteria": {"min_parse_rate": 0.8, "min_wrong_cases": 30,
                                                              "min_own_rare_share": 0.6, "max_other_rare_share": 0.2}},
    "table": {}, "analysis": {},
}


def _result(student: str, blamed: dict[str, int], parsed: int = 190, correct: int = 120) -> StudentPilot:
    return StudentPilot(student=student, mix="m", student_path="p", build_s=1.0, final_pretraining_loss=0.5, probe=200,
                        parsed=parsed, correct=correct, wrong=200 - correct, blamed_by_truth=blamed,
                        blamed_by_teacher={"reader": blamed, "world-teacher": {"size": 80}},
                        localised_by_teacher={"reader": 1.0, "world-teacher": 0.55},
                        forced_accuracy={"1: size": 0.9}, skill_families={"find-big": 0.7})


def test_the_criteria_are_judged_on_the_worlds_truth_per_student() -> None:
    spec = CrossoverSpec.model_validate(SPEC)
    results = {"count-weak": _result("count-weak", {"counting": 56, "size": 10, "colour": 14}),
               "size-weak": _result("size-weak", {"size": 40, "counting": 20, "colour": 20})}
    criteria = {c.name: c for c in go_criteria(spec, results)}
    assert len(criteria) == 8
    assert criteria["count-weak: own rare skill (counting) blamed"].value == pytest.approx(0.7)
    assert criteria["count-weak: own rare skill (counting) blamed"].held
    assert criteria["size-weak: own rare skill (size) blamed"].value == 0.5
    assert not criteria["size-weak: own rare skill (size) blamed"].held
    assert not criteria["size-weak: other's rare skill (counting) blamed"].held  # 25% > 20%
    assert criteria["count-weak: wrong probe cases"].value == 80 and criteria["count-weak: parse rate"].held
    text = pilot_markdown(spec, results, list(criteria.values()))
    assert "(NO GO)" in text.splitlines()[0] and "| count-weak | world-teacher | size 80 (100%) | 55% |" in text


def test_a_spec_needs_two_students_rare_in_different_skills() -> None:
    with pytest.raises(ValueError, match="different skills"):
        CrossoverSpec.model_validate({**SPEC, "rare_skill": {"count-weak": "size", "size-weak": "size"}})


@pytest.mark.slow
def test_a_pilot_on_tiny_students_reports_each_and_reuses_what_it_measured(
        tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = ["student.tiny.steps=30", "student.tiny.pretrain_samples=600"]
    short = ["student.max_new_tokens=24"]  # untrained students ramble: a short answer keeps the test short
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**SPEC, "teacher": {"overrides": tiny},
                                         "pilot": {**SPEC["pilot"], "probe_size": 12, "student_overrides": [*tiny, *short]}}))
    monkeypatch.setattr(pilot, "SKILL_FAMILY_SAMPLES", 4)
    spec = pilot.load_crossover_spec(spec_file)
    out = tmp_path / "pilot"
    extra = [f"cache_dir={cache_dir}"]
    criteria = run_pilot(spec, out, console=Console(quiet=True), extra=extra)
    assert len(criteria) == 8 and json.loads((out / "criteria.json").read_text())[0]["name"] == criteria[0].name
    for student in spec.students:
        result = StudentPilot.model_validate_json((out / f"{student}.json").read_text())
        assert result.probe == 12 and result.correct + result.wrong == 12 and result.parsed <= 12
        assert sum(result.blamed_by_truth.values()) == result.wrong
        assert set(result.blamed_by_teacher) == set(result.localised_by_teacher) == {"reader", "world-teacher"}
        assert all(sum(counts.values()) == result.wrong for counts in result.blamed_by_teacher.values())
        if result.wrong:  # the reader diffs the gold steps: it finds the world's first wrong step every time
            assert result.localised_by_teacher["reader"] == 1.0
        assert set(result.forced_accuracy) == {"1: size", "2: colour", "3: counting", "4: answer"}
    assert "Go-criteria (pre-registered in the spec)" in (out / "pilot.md").read_text()

    measured: list[str] = []
    original = pilot.pilot_student
    monkeypatch.setattr(pilot, "pilot_student", lambda spec, student, **kw: measured.append(student) or original(
        spec, student, **kw))
    run_pilot(spec, out, console=Console(quiet=True), extra=extra)
    assert measured == [], "a finished student is read back, not measured again"
    lacking = StudentPilot.model_validate_json((out / "size-weak.json").read_text())
    lacking.localised_by_teacher.pop("world-teacher")
    (out / "size-weak.json").write_text(lacking.model_dump_json())
    run_pilot(spec, out, console=Console(quiet=True), extra=extra)
    assert measured == ["size-weak"], "a student measured without a teacher is measured again"

    bare = tmp_path / "pilot-without-teacher"
    run_pilot(spec, bare, console=Console(quiet=True), extra=extra, with_teacher=False)
    result = StudentPilot.model_validate_json((bare / "count-weak.json").read_text())
    assert set(result.localised_by_teacher) == {"reader"}, "without the teacher only the config's critics run"
    assert "not built or run in this pilot (`--without-teacher`)" in (bare / "pilot.md").read_text()
