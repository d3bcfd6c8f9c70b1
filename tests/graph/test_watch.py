"""`gaptune watch` driven in a real terminal (tmux: send-keys, capture-pane) against a loop running in another process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gaptune.graph.live_status import read_status

pytestmark = pytest.mark.slow

TRAINING = re.compile(r"stage\s+train\b(?s:.*)training lora candidate: \S* step \d+/\d+")


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")
def test_watch_follows_a_running_loop_to_its_end(cache_dir: Path, tiny_student: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [f"cache_dir={cache_dir}", f"student.path={tiny_student}", "task.probe_size=40", "task.val_size=40",
                 "task.test_size=40", "pool.size=3000", "round_budget=60", "budget=60", "max_rounds=1",
                 "trainer.epochs=3", "trainer.batch_size=8"]
    command = [sys.executable, "-m", "gaptune.cli", "run", "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    loop = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    socket = f"gaptune-watch-{os.getpid()}"  # a tmux server of its own: the user's sessions are never touched
    frames: list[str] = []
    paused = False  # the loop is held (SIGSTOP) while it trains, until the view has shown it: no race on a fast machine
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "config.yaml").exists() and loop.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert loop.poll() is None, loop.stderr.read().decode() if loop.stderr else "the loop ended early"
        _tmux(socket, "new-session", "-d", "-s", "watch", "-x", "150", "-y", "40")
        _tmux(socket, "send-keys", "-t", "watch",
              f"{sys.executable} -m gaptune.cli watch {run_dir} --interval 0.1; echo WATCH-EXIT=$?", "Enter")
        held_since, deadline = None, time.monotonic() + 900
        while time.monotonic() < deadline:
            status = read_status(run_dir)
            if not paused and status and status.stage == "train" and status.training:
                loop.send_signal(signal.SIGSTOP)
                paused, held_since = True, time.monotonic()
            frame = _tmux(socket, "capture-pane", "-p", "-t", "watch")
            if not frames or frame != frames[-1]:
                frames.append(frame)
            if held_since is not None and (TRAINING.search(frame) or time.monotonic() - held_since > 60):
                loop.send_signal(signal.SIGCONT)
                held_since = None
            if re.search(r"WATCH-EXIT=\d", frame):  # the typed command itself reads WATCH-EXIT=$?
                break
            time.sleep(0.05)
        assert loop.wait(timeout=300) == 0, loop.stderr.read().decode() if loop.stderr else ""
    finally:
        if loop.poll() is None:
            loop.send_signal(signal.SIGCONT)
            loop.kill()
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)

    assert paused, "the loop was never seen training"
    final = frames[-1]
    assert "WATCH-EXIT=0" in final, final
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert f"run ended: {metrics['stop_reason']}" in final, final
    base, trained = metrics["rounds"]
    assert f"r0 {base['val_acc']:.3f} · r1 {trained['val_acc']:.3f}" in final, final
    live = [f for f in frames if "run ended" not in f and "gaptune watch" in f]
    training = [f for f in live if TRAINING.search(f)]
    assert training, "no frame showed the candidate training:\n" + "\n---\n".join(live)
    assert any(re.search(r"round\s+1\b", f) and re.search(r"\d+/\d+ cases critiqued", f) for f in live)
