"""Running a spec's cells: each an ordinary gaptune run in its own directory; finished ones are kept, interrupted
ones resumed, so a table is built in several sittings."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from gaptune.data.atomic import write_text_atomic
from gaptune.experiments.spec import EfficiencySpec, TeacherRecipe, cell_overrides, plan, run_dir, teacher_overrides
from gaptune.graph.config import load_config


def world_teacher(recipe: TeacherRecipe, extra: Sequence[str] = ()) -> Path:
    """The world teacher's directory: shipped, cached, or built here on first use like any tiny student."""
    from gaptune.training.tiny_student import build_tiny_student

    config = load_config(None, [*extra, *teacher_overrides(recipe)])
    return build_tiny_student(Path(config.cache_dir), config.student.tiny)


def run_cells(spec: EfficiencySpec, out: Path, *, console: Console, arms: Sequence[str] = (),
              on_finished: Callable[[], None] | None = None) -> None:
    """Run every cell not finished yet (resuming interrupted ones), or only those of `arms` when given, in the
    plan's order; `on_finished` after each new run. The table reads whatever has finished."""
    from gaptune.graph.runner import resume, run  # the loop's heavy imports, only when a cell runs

    cells = plan(spec, arms)
    # the cache the spec's runs use is the teacher's too; its recipe is its own, not the students'
    teacher = None if spec.teacher is None else world_teacher(
        spec.teacher, [o for o in spec.overrides if o.startswith("cache_dir=")])
    for number, cell in enumerate(cells, start=1):
        directory = run_dir(out, cell)
        if (directory / "metrics.json").exists():
            continue
        console.print(f"[bold]({number}/{len(cells)}) {cell.key}[/]")
        started = time.perf_counter()
        if (directory / "checkpoints.sqlite").exists():
            resume(directory, console=console)
        else:
            run(load_config(None, cell_overrides(spec, out, cell, teacher)), directory, console=console)
        write_text_atomic(directory / "wall_s.txt", f"{time.perf_counter() - started:.1f}\n")
        if on_finished is not None:
            on_finished()
