"""The student as the loop uses it: its directory (built or found), evaluation with or without an adapter
(in-process or on the student server), and the attempts it wrote."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from gaptune.data.atomic import write_text_atomic
from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample
from gaptune.graph.config import RunConfig
from gaptune.graph.run_data import RunData
from gaptune.graph.run_dir import RunDir
from gaptune.training.evaluate import Evaluation, evaluate, score
from gaptune.training.families import family_of
from gaptune.training.fit import resolve_device
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.lora_trainer import load_adapted, read_adapter_info
from gaptune.training.served import ServedStudent
from gaptune.training.tiny_student import build_tiny_student


@dataclass
class Student:
    config: RunConfig
    data: RunData
    run: RunDir
    _model_lock: threading.Lock = field(default_factory=threading.Lock)
    _attempts_lock: threading.Lock = field(default_factory=threading.Lock)
    _loaded: tuple[str | None, Any, Any] | None = None
    _probe_attempts: tuple[int, dict[str, Attempt]] | None = None

    @cached_property
    def path(self) -> Path:
        if self.config.student.path is not None:
            return Path(self.config.student.path)
        return build_tiny_student(Path(self.config.cache_dir), self.config.student.tiny)

    @cached_property
    def served(self) -> ServedStudent | None:
        server = self.config.student.server
        return ServedStudent(server) if server is not None else None

    def evaluate(self, adapter: str | None, split: str, samples: Sequence[Sample] | None = None) -> Evaluation:
        """Evaluate the student with `adapter` (None: the base) on a split; in-context adapters get demonstrations.

        In-process, or on the student server when `student.server` is set.
        """
        samples = list(samples if samples is not None else self.data.splits[split])
        demonstrations = {}
        if adapter is not None and (k := read_adapter_info(adapter).in_context_k):
            demonstrations = pick_demonstrations(samples, self.data.splits["probe"], k=k, seed=self.config.seed)
        if self.served is not None:
            outputs = self.served.generate_outputs(adapter, samples, demonstrations=demonstrations,
                                                   max_new_tokens=self.config.student.max_new_tokens)
            return score(samples, outputs)
        with self._model_lock:
            if self._loaded is None or self._loaded[0] != adapter:
                model, processor = load_adapted(self.path, adapter, device=resolve_device(self.config.trainer.device))
                self._loaded = (adapter, model, processor)
            _, model, processor = self._loaded
            return evaluate(model, processor, samples, demonstrations=demonstrations,
                            family=family_of(model, self.config.trainer.family),
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
