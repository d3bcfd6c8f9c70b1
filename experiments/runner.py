"""Running a spec's cells: each an ordinary gaptune run in its own directory; finished ones are kept, interrupted
ones resumed, so a table is built in several sittings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from gaptune.data.atomic import write_text_atomic
from gaptune.experiments.spec import EfficiencySpec, cell_overrides, plan, run_dir
from gaptune.graph.config import load_config


def run_cells(spec: EfficiencySpec, out: Path, *, console: Console,
              on_finished: Callable[[], None] | None = None) -> None:
    """Run every cell not finished yet (resuming interrupted ones); `on_finished` after each new run."""
    from gaptune.graph.runner import resume, run  # the loop's heavy imports, only when a cell runs

    cells = plan(spec)
    for number, cell in enumerate(cells, start=1):
        directory = run_dir(out, cell)
        if (directory / "metrics.json").exists():
            continue
        console.print(f"[bold]({number}/{len(cells)}) {cell.key}[/]")
        started = time.perf_counter()
        if (directory / "checkpoints.sqlite").exists():
            resume(directory, console=console)
        else:
            run(load_config(None, cell_overrides(spec, out, cell)), directory, console=console)
        write_text_atomic(directory / "wall_s.txt", f"{time.perf_counter() - started:.1f}\n")
        if on_finished is not None:
            on_finished()
