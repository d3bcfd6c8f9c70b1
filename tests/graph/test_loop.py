"""The adaptation loop end to end on the real world, real Chroma, real SQLite checkpoints."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from killed_run import kill_at_round_one_selection
from typer.testing import CliRunner

from gaptune.cli import app
from gaptune.data.errors import RunDirectoryError
from gaptune.data.records import Critique, Selection, SelectionItem, Usage
from gaptune.graph.build import build_graph
from gaptune.graph.config import load_config
from gaptune.graph.events import SelectEvent
from gaptune.graph.runner import checkpointer, resume, run
from gaptune.graph.trace import read_trace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def overrides(small_loop: list[str]) -> list[str]:
    return small_loop


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, overrides: list[str]) -> Path:
    run_dir = tmp_path_factory.mktemp("run") / "uninterrupted"
    run(load_config(None, overrides), run_dir)
    return run_dir


def _metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def test_metrics_follow_the_schema(finished_run: Path) -> None:
    metrics = _metrics(finished_run)
    assert metrics["task"] == "compare-counts"
    assert metrics["selection"] == "error-driven"
    assert metrics["stop_reason"]
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == list(range(len(rounds)))
    assert rounds[0]["train_size"] == 0 and rounds[0]["gaps"] == {}
    for r in rounds[1:]:
        assert 0.0 <= r["val_acc"] <= 1.0 and 0.0 <= r["test_acc"] <= 1.0
        assert r["gaps"], "every trained round targeted some gap"
        assert r["teacher_usage"]["calls"] == 0 and r["teacher_usage"]["cost_usd"] is None  # reference: free, unpriced
        # held-out mining: about half the probe split is trained on, the rest only mined.
        assert 10 <= r["train_size"] - 60 * r["round"] <= 30
        assert r["diagnosis"]["total"] > 0 and r["diagnosis"]["matched"] <= r["diagnosis"]["total"]
    assert len(metrics["used"]) == rounds[-1]["train_size"] - (rounds[1]["train_size"] - 60)
    report = (finished_run / "report.md").read_text()
    for r in rounds:  # one table row per round, with the metrics' own values
        assert f"| {r['round']} | {r['val_acc']:.3f} | {r['test_acc']:.3f} | {r['train_size']} | {r['chosen'] or '-'} |" \
            in report
    assert (finished_run / "accuracy.png").stat().st_size > 0
    assert (finished_run / "rounds" / "01" / "adapters" / "lora" / "adapter_config.json").exists()


def test_every_trained_pool_sample_has_a_reason(finished_run: Path) -> None:
    events = read_trace(finished_run / "trace.jsonl")
    selections = [e for e in events if isinstance(e, SelectEvent)]
    assert {e.node for e in selections} == {"merge_selection"}
    chosen = [item for e in selections for item in e.output.items]
    assert len(chosen) == 120
    assert len({item.sample_id for item in chosen}) == 120, "no pool sample is trained in two rounds"
    for item in chosen:
        assert item.gap and item.query and item.rank >= 1
    gaps_with_cases = {gap for e in selections for gap, cases in e.inputs.cases_by_gap.items() if cases}
    assert {item.gap for item in chosen} <= gaps_with_cases
    graph_nodes = set(build_graph().get_graph().nodes)
    assert {e.node for e in events} <= graph_nodes


def test_trace_cli_explains_a_sample_and_a_case(finished_run: Path) -> None:
    events = read_trace(finished_run / "trace.jsonl")
    item = next(e for e in events if isinstance(e, SelectEvent)).output.items[0]
    result = CliRunner().invoke(app, ["trace", str(finished_run), "--sample", item.sample_id, "--json"])
    assert result.exit_code == 0, result.output
    reasons = json.loads(result.output)
    assert reasons[0]["gap"] == item.gap and reasons[0]["query"] == item.query
    assert reasons[0]["cases"] and all(c["missing_skill"] and c["explanation"] for c in reasons[0]["cases"])
    case = reasons[0]["cases"][0]["case"]
    result = CliRunner().invoke(app, ["trace", str(finished_run), "--case", case, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["critiques"][0]["teacher"] == "reader"
    result = CliRunner().invoke(app, ["trace", str(finished_run), "--sample", "pool-999999"])
    assert result.exit_code == 1 and "never selected" in result.output


def test_a_second_run_in_the_same_directory_is_refused(finished_run: Path, overrides: list[str]) -> None:
    with pytest.raises(RunDirectoryError, match="resume"):
        run(load_config(None, overrides), finished_run)


def test_resume_after_kill_mid_round_reaches_the_same_result(
    finished_run: Path, overrides: list[str], tmp_path: Path
) -> None:
    run_dir = tmp_path / "killed"
    kill_at_round_one_selection(run_dir, overrides, deadline_s=300)
    assert not (run_dir / "metrics.json").exists()

    resume(run_dir)
    resumed, reference = _metrics(run_dir), _metrics(finished_run)
    assert resumed["stop_reason"] == reference["stop_reason"]
    for got, want in zip(resumed["rounds"], reference["rounds"], strict=True):
        assert got["val_acc"] == pytest.approx(want["val_acc"]) and got["test_acc"] == pytest.approx(want["test_acc"])
        assert got["gaps"] == want["gaps"] and got["train_size"] == want["train_size"]
    picked = lambda d: [i.sample_id for e in read_trace(d / "trace.jsonl") if isinstance(e, SelectEvent)  # noqa: E731
                        for i in e.output.items]
    assert picked(run_dir) == picked(finished_run)


def test_checkpoints_restore_the_states_typed_records_and_no_other_class(caplog: pytest.LogCaptureFixture) -> None:
    serde = checkpointer(sqlite3.connect(":memory:")).serde
    records = {"critique": Critique(sample_id="a", teacher="t", method="m", wrong_step=1, missing_skill="counting",
                                    usage=Usage(calls=2, faults={"timeout": 1})),
               "items": [SelectionItem(sample_id="p", gap="counting", query="q", method="bm25", score=1.5, rank=1)]}
    with caplog.at_level(logging.WARNING):
        assert serde.loads_typed(serde.dumps_typed(records)) == records
    assert not caplog.records, "the state's records are on the checkpointer's list"
    with caplog.at_level(logging.WARNING):
        restored = serde.loads_typed(serde.dumps_typed(Selection(strategy="s", budget=1, allocation={}, items=[])))
    assert not isinstance(restored, Selection) and "Blocked" in caplog.text
