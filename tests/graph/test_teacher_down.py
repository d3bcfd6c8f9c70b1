"""A teacher server that dies mid-run: exit 2 with one line naming it, and a resume that ends like an uninterrupted run."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from teacher_server import FaultServer, free_port, scripted_reply
from typer.testing import CliRunner, Result

from gaptune.cli import app

pytestmark = pytest.mark.slow


def _invoke(*args: str) -> Result:
    return CliRunner(env={"GAPTUNE_DEBUG": None}).invoke(app, list(args))


def _args(run_dir: Path, cache_dir: Path, student: Path, base_url: str) -> list[str]:
    critic = {"backend": "openai", "name": "remote", "model": "fault-model", "base_url": base_url,
              "timeout_s": 2.0, "max_retries": 1}
    overrides = [
        f"cache_dir={cache_dir}", f"student.path={student}", "task.probe_size=40", "task.val_size=16",
        "task.test_size=16", "pool.size=3000", "round_budget=30", "budget=30", "max_rounds=1", "trainer.epochs=1",
        "trainer.batch_size=16", "teacher.method=prompt", "teacher.cache=false", "teacher.max_concurrency=1",
        "max_concurrency=1", "teacher.max_failed_share=0.2", f"teacher.critics=[{json.dumps(critic)}]",
    ]
    return ["--run-dir", str(run_dir), *(part for o in overrides for part in ("--set", o))]


def _metrics(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_teacher_killed_mid_run_is_exit_2_and_resuming_after_a_restart_matches_an_uninterrupted_run(
        cache_dir: Path, tiny_student: Path, tmp_path: Path) -> None:
    with FaultServer(scripted_reply) as healthy:
        reference = tmp_path / "uninterrupted"
        assert _invoke("run", *_args(reference, cache_dir, tiny_student, healthy.base_url)).exit_code == 0
        critiques = len(healthy.requests)
    assert critiques >= 3, "the test needs a round with at least three wrong cases to kill the server inside it"

    port = free_port()
    run_dir = tmp_path / "killed"
    server = FaultServer(scripted_reply, port=port).__enter__()

    def kill_after_two_critiques() -> None:
        while len(server.requests) < 2:
            time.sleep(0.01)
        server.__exit__(None, None, None)

    killer = threading.Thread(target=kill_after_two_critiques, daemon=True)
    killer.start()
    result = _invoke("run", *_args(run_dir, cache_dir, tiny_student, server.base_url))
    killer.join(timeout=5)
    # the server stops accepting only when its loop next polls (up to 0.5 s), so it may answer a few more
    answered = len(server.requests)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: critic 'remote' (teacher 'fault-model' at http://127.0.0.1:")
    assert f"{port}/v1) failed" in lines[0] and "cases in round 1" in lines[0]
    assert f"gaptune resume {run_dir}" in lines[0]
    assert result.stdout.replace("\n", "").startswith(f"run directory: {run_dir}")
    assert not (run_dir / "metrics.json").exists()

    with FaultServer(scripted_reply, port=port) as restarted:
        resumed = _invoke("resume", str(run_dir))
        assert resumed.exit_code == 0, resumed.output
        assert "retrying" in resumed.stdout and "failed critiques of round 1" in resumed.stdout
        assert restarted.model_list_requests == 1  # the server check ran before resuming
        retried = len(restarted.requests)
    # only the failed cases were sent again: every answered one but the one in flight at the kill, if any
    assert critiques - retried >= 2 and answered - 1 <= critiques - retried <= answered
    got, want = _metrics(run_dir), _metrics(reference)
    assert got["used"] == want["used"] and got["stop_reason"] == want["stop_reason"]
    for mine, theirs in zip(got["rounds"], want["rounds"], strict=True):
        for key in ("val_acc", "test_acc", "gaps", "train_size", "chosen"):
            assert mine[key] == theirs[key], key
        assert mine["teacher_usage"].get("failed_cases", 0) == theirs["teacher_usage"].get("failed_cases", 0) == 0
