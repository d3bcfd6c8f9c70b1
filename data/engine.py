"""Where the pool's batch work runs: in this process (`local`, the default) or over a Ray cluster (`ray`).

The work that grows with the pool (embedding documents, checking images on
import, annotating samples, the gradient datastore's per-sample features) is
written once as a *worker*: a class built once per process from keyword
arguments that turns a batch of rows (dicts) into as many result rows, in
order. An engine maps a worker over a stream of rows and yields the results
in input order, so the driver writes the same index, pool file, caches and
datastore whichever engine computed them:

- `LocalEngine` builds the worker here and calls it batch by batch.
- `RayEngine` runs it as a Ray Data job (`map_batches` over an actor pool,
  order preserved) on an existing cluster (`ray.init(address=...)`), one
  window of rows at a time so that the driver's memory stays bounded. Ray is
  the optional extra `gaptune[ray]`; workers must see the same files as the
  driver (the student, the embedder, the images): a shared filesystem.

Only the driver writes: workers return rows, the driver commits them, so
resuming after a kill, idempotence and the on-disk formats are the
single-machine path's.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gaptune.data.errors import ConfigError

Row = dict[str, Any]
EngineName = Literal["local", "ray"]


class Worker(Protocol):
    """Built once per process from keyword arguments; maps a batch of rows to as many result rows, in order."""

    def __call__(self, rows: list[Row]) -> list[Row]: ...


WorkerClass = Callable[..., Worker]


class EngineConfig(BaseModel):
    """`engine`: where pool-sized batch work runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: EngineName = "local"
    # The cluster to join: "auto" (the one `ray start` runs on this machine), "HOST:PORT" or "ray://HOST:PORT".
    address: str = "auto"
    # Ray actors running the worker at once (each holds one CPU and its own copy of the model).
    workers: int = Field(default=2, ge=1)
    # Rows handed to Ray per job: bounds what the driver holds at once; each job starts its actors anew
    # (a model load each), so a window is large.
    window: int = Field(default=100_000, ge=1)


class Engine(Protocol):
    name: str

    def map(self, worker: WorkerClass, kwargs: Mapping[str, Any], rows: Iterable[Row], *,
            batch_size: int, env: Mapping[str, str] | None = None) -> Iterator[Row]:
        """`worker(**kwargs)` over `rows` in batches of `batch_size`; the result rows in input order. `env`: the
        environment variables the worker needs (an API key) where it runs in another process."""
        ...


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    iterator = iter(rows)
    while batch := list(islice(iterator, size)):
        yield batch


class LocalEngine:
    name = "local"

    def map(self, worker: WorkerClass, kwargs: Mapping[str, Any], rows: Iterable[Row], *,
            batch_size: int, env: Mapping[str, str] | None = None) -> Iterator[Row]:
        built: Worker | None = None
        for batch in _batches(rows, batch_size):
            built = built or worker(**kwargs)  # built on the first batch: nothing to do, nothing loaded
            results = built(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"{getattr(worker, '__name__', worker)} returned {len(results)} rows for "
                                   f"{len(batch)}")
            yield from results


def _columns(rows: list[Row]) -> dict[str, Any]:
    """Rows as the column batch Ray Data carries: equal-length arrays stack, anything else is an object column."""
    columns: dict[str, Any] = {}
    for key in rows[0]:
        values = [row[key] for row in rows]
        if isinstance(values[0], np.ndarray):
            columns[key] = np.stack(values)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = values
            columns[key] = column
    return columns


def _rows(columns: Mapping[str, Any]) -> list[Row]:
    keys = list(columns)
    count = len(columns[keys[0]]) if keys else 0
    return [{key: _plain(columns[key][i]) for key in keys} for i in range(count)]


def _plain(value: Any) -> Any:
    """A column entry back as the row value a worker wrote (Ray hands strings back as numpy scalars)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class _RayBatch:
    """The worker inside a Ray actor: column batches in, column batches out."""

    def __init__(self, worker: WorkerClass, kwargs: Mapping[str, Any]) -> None:
        self.worker = worker(**kwargs)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        rows = _rows(batch)
        results = self.worker(rows)
        if len(results) != len(rows):
            raise RuntimeError(f"worker returned {len(results)} rows for {len(rows)}")
        return _columns(results)


class RayEngine:
    name = "ray"

    def __init__(self, config: EngineConfig) -> None:
        try:
            import ray
        except ImportError as error:
            raise ConfigError("engine.name is 'ray' but Ray is not installed: pip install 'gaptune[ray]'") from error
        self.config = config
        if not ray.is_initialized():
            _check_reachable(config.address)
            try:
                ray.init(address=config.address, log_to_driver=False, configure_logging=False)
            except ConnectionError as error:
                raise ConfigError(f"engine.address {config.address!r}: no Ray cluster answers there ({error}); "
                                  "start one with `ray start --head` or name its address") from error

    def map(self, worker: WorkerClass, kwargs: Mapping[str, Any], rows: Iterable[Row], *,
            batch_size: int, env: Mapping[str, str] | None = None) -> Iterator[Row]:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        # whole batches per window: the batches are the local engine's, so are the results
        window_rows = max(batch_size, self.config.window // batch_size * batch_size)
        remote: dict[str, Any] = {"runtime_env": {"env_vars": dict(env)}} if env else {}
        for window in _batches(rows, window_rows):
            dataset = ray.data.from_items(window).map_batches(
                _RayBatch, fn_constructor_kwargs={"worker": worker, "kwargs": dict(kwargs)}, batch_size=batch_size,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=self.config.workers), num_cpus=1,
                **remote)
            produced = 0
            for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
                results = _rows(batch)
                produced += len(results)
                yield from results
            if produced != len(window):
                raise RuntimeError(f"Ray returned {produced} rows for a window of {len(window)}")


def _check_reachable(address: str) -> None:
    """A named cluster that refuses connections is an error at once (Ray itself waits minutes for it)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as error:
        raise ConfigError(f"engine.address {address!r}: no Ray cluster answers there ({error}); start one with "
                          "`ray start --head` or name its address (HOST:PORT or ray://HOST:PORT)") from error


def build_engine(config: EngineConfig | None = None) -> Engine:
    config = config or EngineConfig()
    return RayEngine(config) if config.name == "ray" else LocalEngine()
