"""What the tables read from a spec's finished runs, and what each selection is made of."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from gaptune.data.sample import Sample
from gaptune.data.world.world import POOL_NAMESPACES, world_sample
from gaptune.experiments.spec import Cell, EfficiencySpec, plan, run_dir
from gaptune.graph.metrics import read_metrics
from gaptune.graph.run_dir import RunDir


class Finished(BaseModel):
    """What the table needs from one finished run."""

    cell: Cell
    base_test: float
    test: float
    val: float
    stop_reason: str
    used: list[str]
    gaps: dict[str, int]
    diagnosis: dict[str, int]
    test_correct: list[bool]
    base_correct: list[bool]
    wall_s: float | None


def _correct(path: Path) -> list[bool]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [row["correct"] for row in sorted(rows, key=lambda row: row["sample_id"])]


def collect(spec: EfficiencySpec, out: Path) -> list[Finished]:
    finished = []
    for cell in plan(spec):
        run = RunDir(run_dir(out, cell))
        if not run.metrics.exists():
            continue
        metrics = read_metrics(run.metrics)
        base, final = metrics.rounds[0], metrics.last
        wall = run.root / "wall_s.txt"
        last = final.round
        finished.append(Finished(
            cell=cell, base_test=base.test_acc, test=final.test_acc, val=final.val_acc,
            stop_reason=metrics.stop_reason or "", used=metrics.used,
            gaps=final.gaps if last else {}, diagnosis=final.diagnosis,
            test_correct=_correct(run.attempts(last, "test")), base_correct=_correct(run.attempts(0, "test")),
            wall_s=float(wall.read_text()) if wall.exists() else None,
        ))
    return finished


def _selected_sample(sample_id: str, world_seed: int) -> Sample | None:
    """A world pool sample from its id (pool-NNNNNN, pool.v2-NNNNNN); None for the ceiling's target samples."""
    prefix, _, index = sample_id.rpartition("-")
    return world_sample(world_seed, prefix, int(index)) if prefix in POOL_NAMESPACES.values() else None


def composition(used: Sequence[str], world_seed: int = 0) -> tuple[Counter[str], Counter[str]]:
    """Counts per skill (a sample counts for each skill it teaches) and per family of a selection."""
    skills: Counter[str] = Counter()
    families: Counter[str] = Counter()
    for sample_id in used:
        sample = _selected_sample(sample_id, world_seed)
        if sample is None:
            families["(target task)"] += 1
            continue
        families[sample.task] += 1
        skills.update(sample.skills)
    return skills, families

