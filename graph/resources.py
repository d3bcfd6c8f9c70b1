"""What the nodes work with but the state must not hold: samples, the pool, its index, models, teachers.

Built once per process from the run config, so a resumed run rebuilds exactly
the same resources from `config.yaml` and the caches.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from rich.console import Console

from gaptune.agents.critics import Critic, build_critics
from gaptune.agents.judge import Judge, build_judge
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.llm.server_check import check_server
from gaptune.agents.teacher_config import http_teachers
from gaptune.agents.teacher_health import FailFast
from gaptune.data.atomic import write_text_atomic
from gaptune.data.attempt import Attempt
from gaptune.data.errors import ConfigError
from gaptune.data.loaders import DuplicateIds, load_samples
from gaptune.data.sample import Sample
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import CEILING_START, DRAW_STRIDE, task_split
from gaptune.data.world.world import pool as world_pool
from gaptune.graph.config import RunConfig
from gaptune.graph.run_dir import RunDir
from gaptune.graph.trace import Trace
from gaptune.tools.pool_index import FORMAT_VERSION as INDEX_FORMAT
from gaptune.tools.pool_index import PoolIndex, index_pool
from gaptune.training.evaluate import Evaluation, evaluate, score
from gaptune.training.fit import resolve_device
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.lora_trainer import load_adapted, read_adapter_info
from gaptune.training.served import ServedStudent
from gaptune.training.tiny_student import build_tiny_student


def _in_mining_part(sample_id: str, fraction: float) -> bool:
    """A stable split of the probe by id hash: the part errors are mined on, never trained on."""
    return int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) / 0x1_0000_0000 < fraction


@lru_cache(maxsize=2)
def _world_pool(seed: int, size: int, excluded: tuple[str, ...]) -> dict[str, Sample]:
    """The world's pool, built once per process: runs in a row (`gaptune bench`) share it, read-only."""
    return {s.id: s for s in world_pool(seed, size, excluded)}


def _file_identity(path: str | None) -> list[int] | None:
    """Size and mtime of a user's pool file: an edited pool gets a fresh index instead of a stale one."""
    if path is None:
        return None
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


@dataclass
class Resources:
    config: RunConfig
    run: RunDir
    console: Console = field(default_factory=Console)
    _model_lock: threading.Lock = field(default_factory=threading.Lock)
    _index_lock: threading.Lock = field(default_factory=threading.Lock)
    _attempts_lock: threading.Lock = field(default_factory=threading.Lock)
    _loaded: tuple[str | None, Any, Any] | None = None
    # Per config key (task.probe, pool.path, ...): what loading the user's file skipped and noted.
    data_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    _probe_attempts: tuple[int, dict[str, Attempt]] | None = None

    @cached_property
    def trace(self) -> Trace:
        return Trace(self.run.trace)

    @cached_property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir)

    @cached_property
    def student_path(self) -> Path:
        if self.config.student.path is not None:
            return Path(self.config.student.path)
        return build_tiny_student(self.cache_dir, self.config.student.tiny)

    def _load_file(self, key: str, path: str, *, image_root: str | None, strict: bool = True,
                   duplicate_ids: DuplicateIds = "skip") -> list[Sample]:
        """A user's data file named by config `key`: loaded, its skips and notes kept for metrics and shown."""
        result = load_samples(path, image_root=image_root, strict=strict, duplicate_ids=duplicate_ids)
        self.data_files[key] = result.summary()
        if result.skipped:
            self.console.print(f"[yellow]{key}: skipped {result.skipped} bad rows or duplicate ids of {path}[/]")
            self.trace.record(f"load/{key}", round_=0, node="load_data", agent="loader", inputs={"path": path},
                              output={"skipped": result.skipped,
                                      "problems": [p.describe() for p in result.problems[:50]]})
        for note in result.notes:
            self.console.print(f"[yellow]note: {note}[/]")
        return result.samples

    def data_report(self) -> dict[str, dict[str, Any]]:
        """Per config key, what loading each of the run's data files read and skipped (`LoadResult.summary`).

        Loads what this process has not loaded yet (a resumed run may never
        have needed the pool), so a resumed run reports what an uninterrupted one does.
        """
        self.splits  # noqa: B018 - loading is the point: the cached property records the file's summary
        self.pool  # noqa: B018
        if self.config.selection == "ceiling":
            self.ceiling_samples  # noqa: B018
        return dict(self.data_files)

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

    @cached_property
    def fixed_ids(self) -> list[str]:
        """The pool ids a `fixed` selection trains on, in file order; unknown ids are an error naming the file."""
        path = Path(self.config.selection_ids or "")
        try:
            ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except FileNotFoundError as error:
            raise ConfigError(f"selection_ids: {path} does not exist") from error
        unknown = [sample_id for sample_id in ids if sample_id not in self.pool]
        if unknown:
            raise ConfigError(f"selection_ids: {len(unknown)} ids of {path} are not in the pool (e.g. {unknown[0]!r})")
        return ids

    def training_sample(self, sample_id: str) -> Sample:
        """A selected sample: from the pool, or for the ceiling arm from the target task."""
        return self.pool[sample_id] if sample_id in self.pool else self.ceiling_samples[sample_id]

    @cached_property
    def pool(self) -> dict[str, Sample]:
        excluded = set(self.config.pool.exclude_families)
        if self.config.pool.path is None:
            return _world_pool(self.config.world_seed, self.config.pool.size, tuple(sorted(excluded)))
        samples = self._load_file("pool.path", self.config.pool.path, image_root=self.config.pool.image_root,
                                  strict=self.config.pool.strict, duplicate_ids=self.config.pool.duplicate_ids)
        return {s.id: s for s in samples if s.task not in excluded}

    @cached_property
    def skill_vocabulary(self) -> dict[str, str]:
        """Every skill the pool teaches, with a description where one is known."""
        skills = sorted({skill for sample in self.pool.values() for skill in sample.skills})
        return {skill: SKILL_DESCRIPTIONS.get(skill, "") for skill in skills}

    @property
    def index(self) -> PoolIndex:
        """The pool index, opened (or built, first run only) once; parallel retrieval branches wait for it."""
        with self._index_lock:
            return self._opened_index

    @cached_property
    def _opened_index(self) -> PoolIndex:
        fingerprint = hashlib.sha256(
            json.dumps([INDEX_FORMAT, self.config.pool.model_dump(), self.config.world_seed,
                        self.config.retrieval.embedding_model, _file_identity(self.config.pool.path)]).encode()
        ).hexdigest()[:12]
        index_dir = self.cache_dir / "pool-index" / fingerprint
        chroma = self.config.retrieval.chroma
        try:
            return PoolIndex.open(index_dir, chroma=chroma)
        except FileNotFoundError:
            self.console.print(f"indexing the pool ({len(self.pool)} samples) into {index_dir}")
            index_pool(self.pool.values(), index_dir, chroma=chroma, embedding_model=self.config.retrieval.embedding_model,
                       skill_descriptions=self.skill_vocabulary)
            return PoolIndex.open(index_dir, chroma=chroma)

    @cached_property
    def teacher_limiter(self) -> Limiter:
        """The run's one bound on teacher requests in flight, every role together (`teacher.max_concurrency`)."""
        return request_limiter(self.config.teacher.max_concurrency)

    @cached_property
    def critics(self) -> dict[str, Critic]:
        critics = build_critics(self.config.teacher, cache_dir=self.cache_dir / "teacher", limiter=self.teacher_limiter)
        return {critic.name: critic for critic in critics}

    @cached_property
    def fail_fast(self) -> FailFast:
        """Per round and critic, failed cases in a row: past `teacher.fail_fast_after` the rest are not sent."""
        return FailFast(self.config.teacher.fail_fast_after)

    @cached_property
    def judge(self) -> Judge:
        return build_judge(self.config.teacher, cache_dir=self.cache_dir / "teacher", vocabulary=self.skill_vocabulary,
                           embedding_model=self.config.retrieval.embedding_model, limiter=self.teacher_limiter)

    def check_before_work(self) -> None:
        """Refuse, before any work, what would fail later and needs no model to find: a file that is not there,
        a device this machine lacks, a teacher without its key or server, a teacher the data cannot feed."""
        self.check_files_exist()
        resolve_device(self.config.trainer.device)
        if self.config.student.path is None:
            resolve_device(self.config.student.tiny.device)
        if self.config.teacher.check_servers:
            for role, backend in http_teachers(self.config.teacher):
                if role != "teacher.annotator":  # the annotator works in `gaptune pool annotate`, not in a run
                    check_server(backend, role=role)
        self.check_teacher_fits_data()

    def check_files_exist(self) -> None:
        """Every path the config names, by its key."""
        config = self.config
        paths = {"task.probe": config.task.probe, "task.val": config.task.val, "task.test": config.task.test,
                 "task.ceiling": config.task.ceiling, "task.image_root": config.task.image_root,
                 "pool.path": config.pool.path, "pool.image_root": config.pool.image_root,
                 "student.path": config.student.path, "selection_ids": config.selection_ids}
        for key, path in paths.items():
            if path is not None and "://" not in path and not Path(path).exists():
                raise ConfigError(f"{key}: {path} does not exist")

    def check_teacher_fits_data(self) -> None:
        """The reference and reader teachers read gold rationale steps: refuse a task without them before any work."""
        teacher = self.config.teacher
        backends = [*teacher.critics, *([teacher.fallback] if teacher.fallback else [])]
        gold_readers = [c.backend for c in backends if c.backend in ("reference", "reader")]
        missing = [s.id for s in self.splits["probe"] if not s.steps]
        if gold_readers and missing:
            notes = "".join(f" (note: {note})" for note in self.data_files.get("task.probe", {}).get("notes", []))
            raise ConfigError(
                f"the {gold_readers[0]} teacher needs gold rationale steps, but {len(missing)} probe samples have none "
                f"(e.g. {missing[0]!r}){notes}; add them as docs/data.md shows, or configure an LLM critic in "
                "teacher.critics (see docs/teachers.md)"
            )

    @cached_property
    def served_student(self) -> ServedStudent | None:
        server = self.config.student.server
        return ServedStudent(server) if server is not None else None

    def evaluate(self, adapter: str | None, split: str, samples: Sequence[Sample] | None = None) -> Evaluation:
        """Evaluate the student with `adapter` (None: the base) on a split; in-context adapters get demonstrations.

        In-process, or on the student server when `student.server` is set.
        """
        samples = list(samples if samples is not None else self.splits[split])
        demonstrations = {}
        if adapter is not None and (k := read_adapter_info(adapter).in_context_k):
            demonstrations = pick_demonstrations(samples, self.splits["probe"], k=k, seed=self.config.seed)
        if self.served_student is not None:
            outputs = self.served_student.generate_outputs(adapter, samples, demonstrations=demonstrations,
                                                           max_new_tokens=self.config.student.max_new_tokens)
            return score(samples, outputs)
        with self._model_lock:
            if self._loaded is None or self._loaded[0] != adapter:
                model, processor = load_adapted(self.student_path, adapter, device=resolve_device(self.config.trainer.device))
                self._loaded = (adapter, model, processor)
            _, model, processor = self._loaded
            return evaluate(model, processor, samples, demonstrations=demonstrations,
                            batch_size=self.config.student.eval_batch_size,
                            max_new_tokens=self.config.student.max_new_tokens)

    def save_attempts(self, path: Path, attempts: Sequence[Attempt]) -> None:
        write_text_atomic(path, "".join(a.model_dump_json() + "\n" for a in attempts))

    def probe_attempts(self, round_: int) -> dict[str, Attempt]:
        """The round's probe answers by sample id, read once per round (every critique branch needs them)."""
        with self._attempts_lock:
            if self._probe_attempts is None or self._probe_attempts[0] != round_:
                path = self.run.attempts(round_, "probe")
                attempts = (Attempt.model_validate_json(line) for line in path.read_text().splitlines() if line)
                self._probe_attempts = (round_, {a.sample_id: a for a in attempts})
            return self._probe_attempts[1]
