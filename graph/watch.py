"""`gaptune watch RUN_DIR`: a live terminal view of a loop running in another process, read from status.json.

The view only reads the run directory (`graph/live_status.py` writes it), so
it can be started, stopped and restarted at any time without touching the run.
It ends when the run does, or when the process that ran it is gone (killed:
the view says how to resume).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gaptune.graph.live_status import LiveStatus, TeacherSpend, TrainingProgress, read_status

BAR_WIDTH = 24


def process_alive(status: LiveStatus) -> bool | None:
    """Whether the run's process still exists; None when it runs on another host (nothing to check)."""
    if status.host != socket.gethostname():
        return None
    try:
        os.kill(status.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return "█" * filled + "·" * (BAR_WIDTH - filled)


def _training(label: str, progress: TrainingProgress) -> str:
    loss = "" if progress.loss is None else f" · loss {progress.loss:.4f}"
    return f"{label}: {_bar(progress.step, progress.max_steps)} step {progress.step}/{progress.max_steps}{loss}"


def _spend(spend: TeacherSpend) -> str:
    cost = "n/a (unpriced)" if spend.cost_usd is None else f"${spend.cost_usd:.4f}"
    cached = f" (+{spend.cached_calls} cached)" if spend.cached_calls else ""
    faults = f" · {spend.faults} faults retried" if spend.faults else ""
    return f"{spend.calls} calls{cached} · {spend.tokens_in}/{spend.tokens_out} tokens in/out · {cost}{faults}"


def render_status(status: LiveStatus | None, run_dir: Path, *, alive: bool | None = True) -> RenderableType:
    """The view of one status: where the loop is, this round's progress, results and cost so far."""
    if status is None:
        return Panel(Text(f"waiting for the run in {run_dir} to start (no status.json yet)"), title="gaptune watch")
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    running = ", ".join(f"{node} x{n}" if n > 1 else node for node, n in status.running.items())
    table.add_row("round", str(status.round))
    table.add_row("stage", status.stage + (f" (running: {running})" if running else ""))
    faults = f" · {status.case_faults} given up" if status.case_faults else ""
    table.add_row("critiques", f"{_bar(status.cases.done, status.cases.total)} {status.cases.done}/{status.cases.total}"
                               f" cases critiqued{faults}")
    selected = "" if status.selected is None else f" · {status.selected} samples selected"
    table.add_row("selection", f"{status.retrieval.done}/{status.retrieval.total} gaps retrieved{selected}")
    for label, progress in status.training.items():
        table.add_row("training", _training(label, progress))
    if status.candidates:
        table.add_row("candidates", " · ".join(f"{kind} val {acc:.3f}" for kind, acc in status.candidates.items()))
    scores = " · ".join(f"r{r.round} {r.val_acc:.3f}" for r in status.history) or "-"
    table.add_row("val so far", scores)
    if status.history:
        last = status.history[-1]
        table.add_row("test", f"{last.test_acc:.3f} at round {last.round} (reported only)")
    table.add_row("cost so far", _spend(status.teacher_total))
    age = time.time() - status.updated
    footer = Text(f"pid {status.pid} on {status.host} · updated {age:.0f} s ago", style="dim")
    parts: list[RenderableType] = [table, footer]
    if status.finished:
        parts.append(Text(f"run ended: {status.outcome}", style="bold green" if status.stage == "finished" else "bold red"))
    elif alive is False:
        parts.append(Text(f"the run's process ({status.pid}) is gone: continue it with `gaptune resume {run_dir}`",
                          style="bold red"))
    return Panel(Group(*parts), title=f"gaptune watch · {run_dir}", title_align="left")


def watch(run_dir: Path, console: Console, *, interval_s: float, once: bool) -> int:
    """Show the view until the run ends (0) or its process is gone (1); `once`: one frame, then return 0."""
    if once:
        status = read_status(run_dir)
        console.print(render_status(status, run_dir, alive=process_alive(status) if status else True))
        return 0
    with Live(render_status(None, run_dir), console=console, refresh_per_second=4, transient=False) as live:
        while True:
            status = read_status(run_dir)
            alive = process_alive(status) if status is not None else True
            live.update(render_status(status, run_dir, alive=alive))
            if status is not None and status.finished:
                return 0
            if status is not None and alive is False:
                return 1
            time.sleep(interval_s)
