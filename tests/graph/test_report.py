"""report.md from metrics: the headline, one row per round with its values, the plots, each round's reason."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from gaptune.data.errors import RunDirectoryError
from gaptune.graph.metrics import RunMetrics, metrics_from_state, read_metrics
from gaptune.graph.report import report_markdown, write_report
from gaptune.graph.run_dir import RunDir


def _round(round_: int, val: float, test: float, train_size: int, chosen: str | None, gaps: dict[str, int],
           usage: dict[str, Any], why: str) -> dict[str, Any]:
    return {"round": round_, "val_acc": val, "test_acc": test, "train_size": train_size, "gaps": gaps,
            "chosen": chosen, "why": why, "candidates": {chosen: val} if chosen else {}, "teacher_usage": usage,
            "diagnosis": {}}


METRICS_FIELDS: dict[str, Any] = {
    "task": "compare-counts",
    "selection": "error-driven",
    "stop_reason": "max rounds reached",
    "rounds": [
        _round(0, 0.5, 0.4567, 0, None, {}, {}, "base student"),
        _round(1, 0.61234, 0.65, 160, "lora", {"counting": 12, "comparison": 3},
               {"calls": 15.0, "tokens_in": 12000.0, "tokens_out": 900.0, "cost_usd": 0.01234, "faults": 5.0,
                "failed_cases": 2.0}, "lora: highest val"),
        _round(2, 0.7, 0.7251, 220, "connector", {"counting": 4},
               {"calls": 0.0, "tokens_in": 0.0, "tokens_out": 0.0, "cost_usd": None}, "connector: highest val"),
    ],
    "used": ["p1", "p2"],
    "data": {},
}
METRICS = RunMetrics.model_validate(METRICS_FIELDS)


def test_the_headline_names_task_arm_stop_and_base_to_last_test_accuracy() -> None:
    text = report_markdown(METRICS)
    lines = text.splitlines()
    assert lines[0] == "# gaptune run: compare-counts (error-driven)"
    assert "Stop reason: max rounds reached" in lines
    assert "Test accuracy: 0.457 (base) -> 0.725 (round 2)." in text


def test_one_row_per_round_with_its_values() -> None:
    rows = [line for line in report_markdown(METRICS).splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert rows == [
        "| 0 | 0.500 | 0.457 | 0 | - | - | 0 | 0/0 | n/a | 0 / 0 |",
        "| 1 | 0.612 | 0.650 | 160 | lora | counting 12, comparison 3 | 15 | 12000/900 | 0.0123 | 2 / 5 |",
        "| 2 | 0.700 | 0.725 | 220 | connector | counting 4 | 0 | 0/0 | n/a | 0 / 0 |",
    ]


def test_each_trained_round_says_why_its_adapter_was_kept() -> None:
    text = report_markdown(METRICS)
    assert "**Round 1**: lora: highest val" in text and "**Round 2**: connector: highest val" in text
    assert "**Round 0**" not in text
    assert "![accuracy per round](accuracy.png)" in text and "![gap profile per round](gaps.png)" in text


def test_a_run_without_rounds_still_gets_a_report() -> None:
    text = report_markdown(METRICS.model_copy(update={"rounds": [], "stop_reason": None}))
    assert "No round was recorded" in text and "Stop reason: None" in text


def test_write_report_writes_the_text_and_both_plots(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    write_report(run, METRICS)
    assert run.report.read_text() == report_markdown(METRICS)
    assert (tmp_path / "accuracy.png").stat().st_size > 0 and (tmp_path / "gaps.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["accuracy.png", "gaps.png", "report.md"]


def test_metrics_from_state_keeps_every_round_field_and_the_used_ids() -> None:
    config = SimpleNamespace(task=SimpleNamespace(name="compare-counts"), selection="random")
    metrics = metrics_from_state(config, {"history": METRICS_FIELDS["rounds"], "stop_reason": "budget spent",
                                          "used": ["p1"]})
    assert (metrics.task, metrics.selection, metrics.stop_reason, metrics.used) == (
        "compare-counts", "random", "budget spent", ["p1"])
    assert metrics.rounds == METRICS.rounds and metrics.rounds[2].teacher_usage.cost_usd is None


def test_skipped_rows_and_notes_of_each_data_file_are_in_the_report() -> None:
    problems = [f"pool.jsonl line {n}, field 'id': duplicate id 'x', first seen at pool.jsonl line 1" for n in (4, 9)]
    data = {"pool.path": {"file": "pool.jsonl", "samples": 897, "skipped": 25, "problems": problems,
                          "notes": ["pool.jsonl: 3 row(s) have a top-level 'rationale' field"]},
            "task.probe": {"file": "probe.jsonl", "samples": 40, "skipped": 0, "problems": [], "notes": []}}
    text = report_markdown(RunMetrics.model_validate({**METRICS_FIELDS, "data": data}))
    section = text[text.index("## Data"):]
    assert "| pool.jsonl (pool.path) | 897 | 25 |" in section and "| probe.jsonl (task.probe) | 40 | 0 |" in section
    assert all(f"- {problem}" in section for problem in problems)
    assert "- ... and 23 more (all of them in trace.jsonl)" in section
    assert "Note: pool.jsonl: 3 row(s) have a top-level 'rationale' field" in section
    assert "## Data" not in report_markdown(METRICS)


def test_metrics_round_trip_and_a_file_of_another_version_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(METRICS.model_dump_json())
    assert read_metrics(path) == METRICS
    older = {**METRICS_FIELDS, "rounds": [{k: v for k, v in r.items() if k != "diagnosis"} for r in METRICS_FIELDS["rounds"]]}
    path.write_text(json.dumps(older))
    with pytest.raises(RunDirectoryError, match=r"metrics.json: not the metrics of this gaptune version.*rounds.0.diagnosis"):
        read_metrics(path)
