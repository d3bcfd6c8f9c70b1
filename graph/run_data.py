"""The run's samples: the task's splits and the parts the loop uses, the pool, the ceiling samples, and what
loading the user's files skipped."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from rich.console import Console

from gaptune.data.errors import ConfigError
from gaptune.data.loaders import DuplicateIds, load_samples
from gaptune.data.sample import Sample
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import CEILING_START, DRAW_STRIDE, TASK_VERSIONS, task_split
from gaptune.data.world.world import pool as world_pool
from gaptune.graph.config import RunConfig
from gaptune.graph.events import LoadEvent, LoadInputs, LoadOutput
from gaptune.graph.trace import Trace


def _in_mining_part(sample_id: str, fraction: float) -> bool:
    """A stable split of the probe by id hash: the part errors are mined on, never trained on."""
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < fraction


@lru_cache(maxsize=2)
def _world_pool(seed: int, size: int, excluded: tuple[str, ...], version: str) -> dict[str, Sample]:
    """The world's pool, built once per process: runs in a row (`gaptune bench`) share it, read-only."""
    return {s.id: s for s in world_pool(seed, size, excluded, version=version)}


@dataclass
class RunData:
    config: RunConfig
    trace: Trace
    console: Console
    # Per config key (task.probe, pool.path, ...): what loading the user's file skipped and noted.
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _load_file(self, key: str, path: str, *, image_root: str | None, strict: bool = True,
                   duplicate_ids: DuplicateIds = "skip") -> list[Sample]:
        """A user's data file named by config `key`: loaded, its skips and notes kept for metrics and shown."""
        result = load_samples(path, image_root=image_root, strict=strict, duplicate_ids=duplicate_ids)
        self.files[key] = result.summary()
        if result.skipped:
            self.console.print(f"[yellow]{key}: skipped {result.skipped} bad rows or duplicate ids of {path}[/]")
            self.trace.record(LoadEvent(event_id=f"load/{key}", round=0, agent="loader", inputs=LoadInputs(path=path),
                                        output=LoadOutput(skipped=result.skipped,
                                                          problems=[p.describe() for p in result.problems[:50]])))
        for note in result.notes:
            self.console.print(f"[yellow]note: {note}[/]")
        return result.samples

    def report(self) -> dict[str, dict[str, Any]]:
        """Per config key, what loading each of the run's data files read and skipped (`LoadResult.summary`).

        Loads what this process has not loaded yet (a resumed run may never
        have needed the pool), so a resumed run reports what an uninterrupted one does.
        """
        self.splits  # noqa: B018 - loading is the point: the cached property records the file's summary
        self.pool  # noqa: B018
        if self.config.selection == "ceiling":
            self.ceiling_samples  # noqa: B018
        return dict(self.files)

    def _load_split(self, split: str) -> list[Sample]:
        task = self.config.task
        if task.world is not None:
            start = 0 if split == "test" else task.draw * DRAW_STRIDE
            return task_split(task.world, split, self.config.world_seed, getattr(task, f"{split}_size"), start=start)
        return self._load_file(f"task.{split}", getattr(task, split), image_root=task.image_root)

    @cached_property
    def splits(self) -> dict[str, list[Sample]]:
        splits = {split: self._load_split(split) for split in ("probe", "val", "test")}
        for split, samples in splits.items():
            if not samples:
                raise ConfigError(f"task split {split!r} is empty; every split needs labelled samples")
        return splits

    @cached_property
    def probe_by_id(self) -> dict[str, Sample]:
        return {s.id: s for s in self.splits["probe"]}

    @cached_property
    def mining_set(self) -> list[Sample]:
        """The probe samples errors are mined on (all of them with `mining: all`)."""
        if self.config.mining == "all":
            return self.splits["probe"]
        return [s for s in self.splits["probe"] if _in_mining_part(s.id, self.config.mining_fraction)]

    @cached_property
    def probe_training_set(self) -> list[Sample]:
        """The probe samples every arm trains on (with `include_probe`), `probe_repeats` times; never the mined ones
        when held out."""
        if not self.config.include_probe:
            return []
        mined = {s.id for s in self.mining_set} if self.config.mining == "held-out" else set()
        return [s for s in self.splits["probe"] if s.id not in mined] * self.config.probe_repeats

    @cached_property
    def ceiling_samples(self) -> dict[str, Sample]:
        """True target-task samples for the `ceiling` arm: drawn beside the probe split, never in val or test."""
        task = self.config.task
        if task.world is not None:
            start = CEILING_START + task.draw * DRAW_STRIDE
            samples = task_split(task.world, "probe", self.config.world_seed, self.config.budget, start=start)
        elif task.ceiling is not None:
            samples = self._load_file("task.ceiling", task.ceiling, image_root=task.image_root)
        else:
            raise ConfigError("selection: ceiling needs task.ceiling, a file of true target-task samples")
        return {s.id: s for s in samples}

    def training_sample(self, sample_id: str) -> Sample:
        """A selected sample: from the pool, or for the ceiling arm from the target task."""
        return self.pool[sample_id] if sample_id in self.pool else self.ceiling_samples[sample_id]

    @cached_property
    def world_version(self) -> str:
        """The world whose pool a world pool is drawn from: the target task's (the first world for file tasks)."""
        return TASK_VERSIONS[self.config.task.world] if self.config.task.world else "v1"

    @cached_property
    def pool(self) -> dict[str, Sample]:
        excluded = set(self.config.pool.exclude_families)
        if self.config.pool.path is None:
            return _world_pool(self.config.world_seed, self.config.pool.size, tuple(sorted(excluded)), self.world_version)
        samples = self._load_file("pool.path", self.config.pool.path, image_root=self.config.pool.image_root,
                                  strict=self.config.pool.strict, duplicate_ids=self.config.pool.duplicate_ids)
        return {s.id: s for s in samples if s.task not in excluded}

    @cached_property
    def skill_vocabulary(self) -> dict[str, str]:
        """Every skill the pool teaches, with a description where one is known."""
        skills = sorted({skill for sample in self.pool.values() for skill in sample.skills})
        return {skill: SKILL_DESCRIPTIONS.get(skill, "") for skill in skills}
