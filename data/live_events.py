"""What the agents, the trainer and the trace announce while they work, for whoever listens.

The run's observers (MLflow, OpenTelemetry spans, the live status file that
`gaptune watch` reads) need to see each teacher call and each training step,
but the agents and the trainer must not know about the graph that observes
them. So they announce plain records here, and a listener installed with
`listening` receives them. The listener lives in a context variable: the
graph's parallel branches copy the context of the thread that started the
run, so every call made inside a run reaches that run's listener, and nothing
is announced (at the cost of one variable lookup) when nobody listens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from gaptune.data.records import Usage


@dataclass(frozen=True)
class TeacherCall:
    """One call to a teacher model (critic, analyst, judge or annotator), answered or failed.

    `messages` are the prompt as sent (images replaced by a placeholder);
    `reply` is the text, or the scores of a log-probability call. No client
    setting travels here, so no key or header can. `fault` names the kind of
    a call that failed after its retries.
    """

    backend: str
    model: str
    operation: str
    messages: list[dict[str, Any]]
    reply: str
    usage: Usage
    started_ns: int
    ended_ns: int
    fault: str | None = None


@dataclass(frozen=True)
class TrainingStep:
    """The trainer finished `step` of `max_steps` (logged loss when this step logged one)."""

    step: int
    max_steps: int
    loss: float | None = None
    label: str = field(default="training")


@dataclass(frozen=True)
class TraceRecorded:
    """The decision trace wrote `event_id` (the node running in this thread made that decision)."""

    event_id: str
    node: str
    agent: str


LiveEvent = TeacherCall | TrainingStep | TraceRecorded
Listener = Callable[[LiveEvent], None]

_listener: ContextVar[Listener | None] = ContextVar("gaptune_live_listener", default=None)


def announce(event: LiveEvent) -> None:
    """Hand `event` to the listener of the current context, if any."""
    listener = _listener.get()
    if listener is not None:
        listener(event)


def is_listened() -> bool:
    """Whether anyone listens: callers skip building an event nobody will read."""
    return _listener.get() is not None


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Route every event announced in this context (and contexts copied from it) to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
