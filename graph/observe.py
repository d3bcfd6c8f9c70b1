"""Watching a run from outside the loop: one hook, in the runner, feeds every observer.

The nodes know nothing of observers. LangGraph runs each node as a LangChain
run, so one callback handler (`_NodeCallbacks`) sees every node start and end
with its input and its update; the agents and the trainer announce teacher
calls and training steps on `gaptune.data.live_events`, and the trace its
events. Both reach the observers below, built from the run config: the live
status file `gaptune watch` reads (always), MLflow tracking
(`tracking.mlflow`) and OpenTelemetry spans (`tracing`). An observer only
records: the loop runs the same with or without any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from gaptune.data.live_events import LiveEvent, listening
from gaptune.graph.resources import Resources


class Observer(Protocol):
    """Receives what happens in a run; each call comes from the thread doing the work and must return quickly."""

    def node_started(self, node: str, key: UUID, inputs: dict[str, Any]) -> None:
        """A node began, with the state (or the branch payload) it reads; `key` pairs it with its end."""

    def node_finished(self, node: str, key: UUID, update: dict[str, Any]) -> None:
        """A node returned its update to the state."""

    def node_failed(self, node: str, key: UUID, error: BaseException) -> None:
        """A node raised (the run ends, or an interrupt pauses it)."""

    def live_event(self, event: LiveEvent) -> None:
        """A teacher call, training step or trace event inside the node that is running in this thread."""

    def run_ended(self, state: dict[str, Any] | None, error: BaseException | None) -> None:
        """The loop returned (`state`: its final values) or raised `error`."""


class _NodeCallbacks(BaseCallbackHandler):
    """LangChain's chain callbacks, narrowed to the graph's nodes (runs directly under the graph's own run)."""

    raise_error = False  # a failing observer must not end the run; LangChain logs the failure

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self._nodes: dict[UUID, str] = {}
        self._graph_run: UUID | None = None
        self._lock = threading.Lock()

    def on_chain_start(self, serialized: dict[str, Any] | None, inputs: dict[str, Any], *, run_id: UUID,
                       parent_run_id: UUID | None = None, metadata: dict[str, Any] | None = None,
                       **kwargs: Any) -> None:
        with self._lock:
            if parent_run_id is None:
                self._graph_run = run_id
                return
            if parent_run_id != self._graph_run:
                return
            node = (metadata or {}).get("langgraph_node") or kwargs.get("name") or "?"
            self._nodes[run_id] = node
        for observer in self.observers:
            observer.node_started(node, run_id, inputs if isinstance(inputs, dict) else {})

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            node = self._nodes.pop(run_id, None)
        if node is not None:
            for observer in self.observers:
                observer.node_finished(node, run_id, outputs if isinstance(outputs, dict) else {})

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            node = self._nodes.pop(run_id, None)
        if node is not None:
            for observer in self.observers:
                observer.node_failed(node, run_id, error)


class Observation:
    """The observers of one execution of the loop: the callbacks to run the graph with, and its end."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.callbacks: list[BaseCallbackHandler] = [_NodeCallbacks(observers)]
        self.state: dict[str, Any] | None = None

    def live_event(self, event: LiveEvent) -> None:
        for observer in self.observers:
            observer.live_event(event)

    def finished(self, state: dict[str, Any]) -> None:
        """The loop returned normally with these final values."""
        self.state = state


def build_observers(res: Resources, state: dict[str, Any]) -> list[Observer]:
    """The observers the config asks for (the status file always), each started on the state the loop resumes from."""
    from gaptune.graph.live_status import StatusFile

    observers: list[Observer] = []
    if res.config.tracking.mlflow is not None:
        from gaptune.graph.mlflow_tracking import MlflowTracker

        observers.append(MlflowTracker(res.config.tracking.mlflow, res, state))
    if res.config.tracing.enabled:
        from gaptune.graph.otel_tracing import SpanTracer

        observers.append(SpanTracer(res.config.tracing, res, state))
    return [StatusFile(res, state), *observers]  # last: a tracker that cannot start leaves no "running" status


@contextmanager
def observing(res: Resources, state: dict[str, Any]) -> Iterator[Observation]:
    """Observe one execution of the loop that starts from `state` (empty for a new run).

    On the way out every observer hears how it ended: with the values passed
    to `Observation.finished`, or with the error that escaped.
    """
    observation = Observation(build_observers(res, state))
    with listening(observation.live_event):
        try:
            yield observation
        except BaseException as error:
            for observer in observation.observers:
                observer.run_ended(None, error)
            raise
        for observer in observation.observers:
            observer.run_ended(observation.state, None)
