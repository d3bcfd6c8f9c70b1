"""`gaptune bench efficiency` at CI size: one target, one budget, two arms, tiny student and splits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gaptune.cli import app
from gaptune.experiments.spec import Cell, EfficiencySpec, cell_overrides, plan
from gaptune.graph.config import load_config
from gaptune.graph.events import ClassifyEvent
from gaptune.graph.trace import read_trace


def test_plan_runs_swaps_after_both_students_error_driven_runs() -> None:
    spec = EfficiencySpec(arms=["swap", "random", "error-driven"], first_seed_arms=["oracle"], extra_budgets=[100],
                          seeds=[0, 1])
    cells = plan(spec)
    keys = [c.key for c in cells]
    assert len(cells) == len(set(keys)) == 2 * (2 * 3 + 2 * 3) + 2
    assert {(c.budget, c.seed) for c in cells if c.arm == "oracle"} == {(spec.budget, 0)}
    for cell in cells:
        if cell.arm == "swap":
            position = cells.index(cell)
            for student in spec.students:
                donor = Cell(student=student, budget=cell.budget, arm="error-driven", seed=cell.seed)
                assert cells.index(donor) < position
    main = [c for c in cells if c.budget == spec.budget]
    assert cells[:len(main)] == main, "the main budget first"
    assert [c.seed for c in main] == sorted(c.seed for c in main), "seed by seed"


def test_spec_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "spec.yaml"
    bad.write_text(yaml.safe_dump({"arms": ["error-driven", "magic"]}))
    result = CliRunner().invoke(app, ["bench", "efficiency", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "unknown arm 'magic'" in result.output
    bad.write_text(yaml.safe_dump({"arms": ["random"]}))
    result = CliRunner().invoke(app, ["bench", "efficiency", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "must include 'error-driven'" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"arms": ["error-driven", "random"]}))
    result = CliRunner().invoke(app, ["bench", "efficiency", str(good), "--out", str(tmp_path / "out"), "--arm", "knn"])
    assert result.exit_code == 2 and "arms not in this spec: ['knn']" in result.output


def test_a_plan_cut_to_some_arms_keeps_their_order() -> None:
    spec = EfficiencySpec(arms=["swap", "random", "error-driven"], first_seed_arms=["oracle"], extra_budgets=[],
                          seeds=[0, 1])
    cut = plan(spec, ["swap", "error-driven"])
    assert cut == [c for c in plan(spec) if c.arm in ("swap", "error-driven")]
    assert [(c.student, c.arm, c.seed) for c in cut] == [
        (student, arm, seed) for seed in (0, 1) for arm in ("error-driven", "swap") for student in spec.students]


@pytest.mark.slow
def test_ci_sized_table_is_written_and_a_rerun_skips_finished_runs(tmp_path: Path, cache_dir: Path,
                                                                   tiny_student: Path) -> None:
    spec = {
        "task": "compare-counts", "students": {"a": "counting-spatial-rare"},
        "arms": ["error-driven", "random", "step-query", "task-steps"], "first_seed_arms": [],
        "budget": 40, "extra_budgets": [], "seeds": [0], "pool_size": 3000,
        "bootstrap_resamples": 200,
        "overrides": [f"cache_dir={cache_dir}", "student.tiny.steps=120", "student.tiny.pretrain_samples=4000",
                      "student.tiny.text_layers=2", "student.tiny.batch_size=32", "student.tiny.learning_rate=2e-3",
                      "task.probe_size=30", "task.val_size=30", "task.test_size=30",
                      "trainer.epochs=1", "trainer.batch_size=16"],
    }
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["bench", "efficiency", str(spec_file), "--out", str(out), "--per-family", "4"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert sorted(r["arm"] for r in rows) == ["error-driven", "random", "step-query", "task-steps"]
    assert all(r["pool_samples"] == "40" and r["stop_reason"] for r in rows)
    driven = next(r for r in rows if r["arm"] == "error-driven")
    assert int(driven["diagnosis_total"]) > 0 and int(driven["diagnosis_matched"]) <= int(driven["diagnosis_total"])
    sources = {arm: next(e for e in read_trace(out / f"runs/a/b40/{arm}/s0/trace.jsonl")
                         if isinstance(e, ClassifyEvent)).output for arm in ("error-driven", "step-query", "task-steps")}
    # error-driven keeps its skill-label meaning under the step-text default; step-query queries by the step texts
    assert sources["error-driven"].source == "errors" and not any(" = " in gap for gap in sources["error-driven"].gaps)
    assert sources["step-query"].source.startswith("wrong step texts")
    assert sources["task-steps"].source.startswith("target gold step texts")
    assert any(gap.startswith("count ") for gap in sources["task-steps"].gaps)
    table = (out / "table.md").read_text()
    assert "| base |" in table and "| **error-driven** |" in table and "[" in table.split("| random |")[1]
    composition = (out / "composition.md").read_text()
    assert "counting" in composition and "more-shapes" in composition
    assert "| counting |" in (out / "students.md").read_text()
    assert (out / "efficiency.png").stat().st_size > 0
    # the reader diffs gold steps, so it blames the true first wrong step of every case it read; error-driven and
    # step-query made the same critiques and count once
    rows_a = [line for line in (out / "localisation.md").read_text().splitlines() if line.startswith("| a | ")]
    assert len(rows_a) == 1 and rows_a[0].split(" | ")[2:7] == ["error-driven", "1", driven["diagnosis_total"], "100%", "0: 100%"]
    run_config = yaml.safe_load((out / "runs/a/b40/random/s0/config.yaml").read_text())
    assert run_config["selection"] == "random" and run_config["max_rounds"] == 1 and run_config["task"]["draw"] == 0
    metrics = out / "runs/a/b40/error-driven/s0/metrics.json"
    assert len(json.loads(metrics.read_text())["used"]) == 40
    before = metrics.stat().st_mtime_ns
    again = CliRunner().invoke(app, ["bench", "efficiency", str(spec_file), "--out", str(out), "--no-students-table"])
    assert again.exit_code == 0, again.output
    assert metrics.stat().st_mtime_ns == before and "(1/4)" not in again.output


def test_full_arm_trains_the_whole_pool_with_the_probe_passes_of_the_other_arms(tmp_path: Path) -> None:
    spec = EfficiencySpec(pool_size=5000, full_pool_epochs=3, overrides=["trainer.epochs=15"])
    full = load_config(None, cell_overrides(spec, tmp_path, Cell(student="count-weak", budget=800, arm="full", seed=1)))
    assert (full.selection, full.round_budget, full.budget) == ("full", 5000, 5000)
    assert full.trainer.epochs * full.probe_repeats == 15 and full.trainer.epochs == 3
    other = load_config(None, cell_overrides(spec, tmp_path, Cell(student="count-weak", budget=800, arm="random",
                                                                   seed=1)))
    assert (other.trainer.epochs, other.probe_repeats, other.round_budget) == (15, 1, 800)
