"""What selectors search the pool with: its index (Chroma + BM25, built on first use and cached by fingerprint) and
the gradient datastore (built on first use per student, pool and warm-up)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from gaptune.agents.selectors.protocol import GradientFeatures, parse_options
from gaptune.data.engine import Engine, build_engine
from gaptune.data.errors import ConfigError
from gaptune.data.sample import Sample
from gaptune.graph.config import RunConfig
from gaptune.graph.run_data import RunData
from gaptune.tools.pool_index import FORMAT_VERSION as INDEX_FORMAT
from gaptune.tools.pool_index import PoolIndex, index_pool
from gaptune.training.fit import resolve_device
from gaptune.training.gradient_datastore import Datastore, DatastoreSettings, open_or_build


def _file_identity(path: str | None) -> list[int] | None:
    """Size and mtime of a user's pool file: an edited pool gets a fresh index instead of a stale one."""
    if path is None:
        return None
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def datastore_settings(config: RunConfig, options: Mapping[str, Any]) -> DatastoreSettings:
    """`selector_options.datastore` as the datastore's settings; a bad key is a ConfigError naming it."""
    try:
        return parse_options(config.selection, DatastoreSettings, options, key="selector_options.datastore")
    except ValueError as error:
        raise ConfigError(str(error)) from None


@dataclass
class PoolSearch:
    config: RunConfig
    data: RunData
    student_path: Callable[[], Path]
    console: Console
    _index_lock: threading.Lock = field(default_factory=threading.Lock)
    _datastore: Datastore | None = None

    @property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir)

    @cached_property
    def engine(self) -> Engine:
        """Where pool-sized work runs (`engine`); joined on first use, so a run that needs none never starts Ray."""
        return build_engine(self.config.engine)

    @property
    def index(self) -> PoolIndex:
        """The pool index, opened (or built, first run only) once; parallel retrieval branches wait for it."""
        with self._index_lock:
            return self._opened_index

    @cached_property
    def _opened_index(self) -> PoolIndex:
        fingerprint = hashlib.sha256(
            json.dumps([INDEX_FORMAT, self.config.pool.model_dump(), self.config.world_seed,
                        self.config.retrieval.embedding_model, _file_identity(self.config.pool.path),
                        self.data.world_version]).encode()
        ).hexdigest()[:12]
        index_dir = self.cache_dir / "pool-index" / fingerprint
        chroma = self.config.retrieval.chroma
        try:
            return PoolIndex.open(index_dir, chroma=chroma)
        except FileNotFoundError:
            self.console.print(f"indexing the pool ({len(self.data.pool)} samples) into {index_dir}")
            index_pool(self.data.pool.values(), index_dir, chroma=chroma,
                       embedding_model=self.config.retrieval.embedding_model,
                       skill_descriptions=self.data.skill_vocabulary, engine=self.engine)
            return PoolIndex.open(index_dir, chroma=chroma)

    def gradient_features(self, targets: Sequence[Sample], options: Mapping[str, Any]) -> GradientFeatures:
        """The gradient datastore of the base student over the whole pool (built on first use, cached), and the
        targets' features from its warm-up model."""
        settings = datastore_settings(self.config, options)
        device = resolve_device(self.config.trainer.device)
        student = self.student_path()
        if self._datastore is None:
            self.console.print(f"gradient datastore: {len(self.data.pool)} pool samples (built once, then cached)")
            self._datastore = open_or_build(self.cache_dir / "gradient-datastore", student,
                                            list(self.data.pool.values()), settings, device=device,
                                            engine=self.engine)
        store = self._datastore
        return GradientFeatures(pool_ids=store.pool_ids, pool=store.features, target_ids=[s.id for s in targets],
                                targets=store.target_features(student, targets, settings, device=device))
