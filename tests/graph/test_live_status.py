"""status.json follows the loop's node events, and `gaptune watch` renders it (the live run: test_watch.py)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from rich.console import Console

from gaptune.data.live_events import TeacherCall, TrainingStep
from gaptune.data.records import Usage
from gaptune.graph import live_status
from gaptune.graph.config import load_config
from gaptune.graph.live_status import StatusFile, read_status
from gaptune.graph.resources import Resources
from gaptune.graph.run_dir import RunDir
from gaptune.graph.watch import render_status


def _text(renderable: object) -> str:
    console = Console(record=True, width=140)
    console.print(renderable)
    return console.export_text()


def _call(tokens_in: int, cost: float | None, faults: dict[str, int] | None = None) -> TeacherCall:
    return TeacherCall(backend="b", model="m", operation="complete", messages=[], reply="r", started_ns=0, ended_ns=1,
                       usage=Usage(calls=1, tokens_in=tokens_in, tokens_out=5, cost_usd=cost, faults=faults or {}))


def test_the_status_follows_a_round(tmp_path: Path) -> None:
    res = Resources(load_config(None, [f"cache_dir={tmp_path}"]), RunDir(tmp_path))
    earlier = {"round": 1, "val_acc": 0.6, "test_acc": 0.55, "chosen": "lora",
               "teacher_usage": {"calls": 4.0, "tokens_in": 100.0, "tokens_out": 20.0, "cost_usd": 0.5, "faults": 1.0}}
    base = {"round": 0, "val_acc": 0.5, "test_acc": 0.45, "chosen": None, "teacher_usage": {}}
    status_file = StatusFile(res, {"round": 1, "history": [base, earlier]})
    assert read_status(tmp_path).stage == "resuming"  # type: ignore[union-attr]

    probe = uuid.uuid4()
    status_file.node_started("probe", probe, {"round": 1})
    status_file.node_finished("probe", probe, {"round": 2, "wrong_cases": ["a", "b", "c", "d"]})
    critiques = [uuid.uuid4() for _ in range(3)]
    for key in critiques:
        status_file.node_started("critique", key, {"round": 2, "case": "a", "critic": "reader"})
    for key in critiques[:2]:
        status_file.node_finished("critique", key, {"critique_candidates": []})
    status_file.live_event(_call(10, 0.25, {"timeout": 2}))
    status_file.live_event(TrainingStep(step=5, max_steps=10, loss=0.75, label="training lora candidate"))
    status_file.live_event(TrainingStep(step=6, max_steps=10, label="training lora candidate"))
    status_file.node_finished("critique", critiques[2], {"teacher_faults": [{"case": "c"}]})  # forces a write

    status = read_status(tmp_path)
    assert status is not None and status.pid == os.getpid()
    assert status.round == 2 and status.stage == "critique" and status.running == {}
    assert (status.cases.done, status.cases.total, status.case_faults) == (3, 4, 1)  # one critic: 4 cases
    assert status.training["training lora candidate"].step == 6
    assert status.training["training lora candidate"].loss == 0.75, "a step without a loss keeps the last loss"
    total = status.teacher_total
    assert (total.calls, total.tokens_in, total.faults) == (5, 110, 3) and total.cost_usd == 0.75
    text = _text(render_status(status, tmp_path))
    for expected in ("round", "3/4 cases critiqued · 1 given up", "step 6/10 · loss 0.7500", "r0 0.500 · r1 0.600",
                     "5 calls", "110/25 tokens", "$0.7500", "3 faults retried"):
        assert expected in text, (expected, text)

    choose = uuid.uuid4()
    status_file.node_started("choose", choose, {"round": 2})
    record = {"round": 2, "val_acc": 0.7, "test_acc": 0.68, "chosen": "lora",
              "teacher_usage": {"calls": 1.0, "tokens_in": 10.0, "tokens_out": 5.0, "cost_usd": 0.25, "faults": 2.0}}
    status_file.node_finished("choose", choose, {"history": [base, earlier, record]})
    status_file.run_ended({"stop_reason": "max rounds reached"}, None)
    status = read_status(tmp_path)
    assert status is not None and status.finished and status.outcome == "max rounds reached"
    assert [r.val_acc for r in status.history] == [0.5, 0.6, 0.7]
    assert status.teacher_total.calls == 5 and status.teacher_total.cost_usd == 0.75, "the round's calls, counted once"
    assert "run ended: max rounds reached" in _text(render_status(status, tmp_path))


def test_a_dead_run_says_how_to_resume(tmp_path: Path) -> None:
    res = Resources(load_config(None, [f"cache_dir={tmp_path}"]), RunDir(tmp_path))
    StatusFile(res, {})
    status = read_status(tmp_path)
    text = _text(render_status(status, tmp_path, alive=False))
    assert "is gone" in text and f"gaptune resume {tmp_path}" in text
    assert "waiting for the run" in _text(render_status(None, tmp_path))


def test_a_trainings_first_and_last_steps_are_published_however_short_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_status, "MIN_INTERVAL_S", 3600.0)  # nothing between boundaries would be written
    status_file = StatusFile(Resources(load_config(None, [f"cache_dir={tmp_path}"]), RunDir(tmp_path)), {})
    label = "training lora candidate"

    def published() -> int:
        status = read_status(tmp_path)
        assert status is not None
        return status.training[label].step

    status_file.live_event(TrainingStep(step=1, max_steps=3, loss=2.0, label=label))
    assert published() == 1
    status_file.live_event(TrainingStep(step=2, max_steps=3, label=label))
    assert published() == 1, "a middle step waits for the interval"
    status_file.live_event(TrainingStep(step=3, max_steps=3, label=label))
    assert published() == 3
