"""A `gaptune run` in a child process, SIGKILLed once its first round has selected data: the crash that resume must
survive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_at_round_one_selection(run_dir: Path, overrides: list[str], *, deadline_s: float = 600) -> None:
    command = [sys.executable, "-m", "gaptune.cli", "run", "--run-dir", str(run_dir)]
    for override in overrides:
        command += ["--set", override]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ})
    trace = run_dir / "trace.jsonl"
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and process.poll() is None:
        if trace.exists() and '"r1/select"' in trace.read_text():
            break
        time.sleep(0.2)
    assert process.poll() is None, process.stderr.read().decode() if process.stderr else "run ended early"
    process.send_signal(signal.SIGKILL)
    process.wait()
