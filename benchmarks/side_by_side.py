"""What the student evaluation benchmarks share: the shipped (or given) student on compare-counts test items, and a
side-by-side timing of a baseline and ours on the same items."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split
from gaptune.graph.config import load_config
from gaptune.training.student import load_student
from gaptune.training.tiny_student import build_tiny_student

Outputs = Callable[[], Sequence[str]]


def student_and_samples(student: Path | None, count: int) -> tuple[Any, Any, list[Sample]]:
    """The model, its processor and the first `count` compare-counts test items."""
    config = load_config()
    model, processor = load_student(student or build_tiny_student(Path(config.cache_dir), config.student.tiny))
    return model, processor, task_split("compare-counts", "test", config.world_seed)[:count]


def compare(count: int, baseline: tuple[str, Outputs], ours: tuple[str, Outputs], *, header: str, same: str) -> None:
    """Time the baseline, then ours; print each one's rate, the ratio and how often their outputs are identical."""
    seconds, outputs = {}, {}
    for label, generate in (baseline, ours):
        started = time.perf_counter()
        outputs[label] = generate()
        seconds[label] = time.perf_counter() - started
    (base, base_s), (mine, mine_s) = seconds.items()
    agree = sum(a == b for a, b in zip(outputs[base], outputs[mine], strict=True)) / count
    width = max(len(base), len(mine)) + 1
    print(f"samples: {count}   {header}")
    for label, took in seconds.items():
        print(f"{label + ':':<{width}} {took:.2f} s  ({count / took:.1f} samples/s)")
    print(f"speed-up ({mine} vs {base}): {base_s / mine_s:.2f}x")
    print(f"{same}: {agree:.1%}")
