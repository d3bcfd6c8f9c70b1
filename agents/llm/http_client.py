"""The HTTP client under every OpenAI-compatible teacher: it counts faults and bounds requests in flight.

Retries are the openai client's own (`max_retries`, exponential backoff,
`Retry-After` honoured); this client only watches every attempt go by, so a
case that recovered after two 429s still shows them in its trace:

- each attempt answered 429 counts as "rate_limit", 408 as "timeout", 409 and
  5xx as "server_error"; an attempt that timed out counts as "timeout", one
  whose connection was refused or dropped as "unreachable";
- a 2xx reply whose body is not a JSON object (an HTML error page, an empty
  body) counts as "malformed" and is raised as a transport error, so the
  openai client retries it like any other failed attempt.

Faults go to the call being recorded in this thread (`recording()`), and the
shared `limiter` (`teacher.max_concurrency`, one per run) holds one permit
per request in flight, so a server never sees more than that many requests
from the whole run, whatever the roles.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from gaptune.agents.llm.errors import FaultKind, TeacherError
from gaptune.data.records import Usage

Limiter = threading.BoundedSemaphore
"""The permits for teacher requests in flight, shared by every backend of a run."""


def request_limiter(max_in_flight: int) -> Limiter:
    """One limit on requests in flight (`teacher.max_concurrency`); pass the same one to every role."""
    return threading.BoundedSemaphore(max_in_flight)


@dataclass
class CallRecord:
    """What the attempts of one call went through: faults by kind and the number of attempts."""

    faults: Counter[str] = field(default_factory=Counter)
    attempts: int = 0


_CURRENT: ContextVar[CallRecord | None] = ContextVar("gaptune_teacher_call", default=None)


@contextmanager
def recording() -> Iterator[CallRecord]:
    """Attribute the attempts made in this block (in this thread) to one record."""
    record = CallRecord()
    token = _CURRENT.set(record)
    try:
        yield record
    finally:
        _CURRENT.reset(token)


class MalformedReply(httpx2.DecodingError):
    """A 2xx reply whose body is not a JSON object: retried by the openai client like a failed connection."""


def status_kind(status: int) -> FaultKind | None:
    """The fault kind of an HTTP status the openai client retries; None for success and for rejections."""
    if status == 429:
        return "rate_limit"
    if status == 408:
        return "timeout"
    if status == 409 or status >= 500:
        return "server_error"
    return None


def _note(kind: FaultKind) -> None:
    record = _CURRENT.get()
    if record is not None:
        record.faults[kind] += 1


class FaultCountingClient(openai.DefaultHttpxClient):
    """The openai SDK's default HTTP client, plus fault counting and the shared in-flight limit."""

    def __init__(self, *, limiter: Limiter | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limiter = limiter

    def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
        record = _CURRENT.get()
        if record is not None:
            record.attempts += 1
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            response = super().send(request, **kwargs)  # not streamed: the body is read before the permit goes back
        except httpx2.TimeoutException:
            _note("timeout")
            raise
        except httpx2.DecodingError:
            _note("malformed")
            raise
        except httpx2.RequestError:
            _note("unreachable")
            raise
        finally:
            if self.limiter is not None:
                self.limiter.release()
        kind = status_kind(response.status_code)
        if kind is not None:
            _note(kind)
        elif response.is_success and not kwargs.get("stream"):
            _check_json_object(request, response)
        return response


def _check_json_object(request: httpx2.Request, response: httpx2.Response) -> None:
    try:
        body = json.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        _note("malformed")
        shown = response.content[:80].decode("utf-8", "replace")
        raise MalformedReply(f"HTTP {response.status_code} reply is not a JSON object: {shown!r}", request=request)


def _kind(error: BaseException) -> FaultKind | None:
    """The fault kind of the error a call ended with; None for a rejected request (4xx) or a bug."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIStatusError):
        return status_kind(error.status_code)
    if isinstance(error, openai.APIConnectionError):  # langchain-openai re-raises it as its own subclass
        return "malformed" if any(isinstance(cause, httpx2.DecodingError) for cause in _causes(error)) else "unreachable"
    if isinstance(error, ValueError):  # langchain-openai: a JSON reply that is no chat completion
        return "malformed"
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        yield cause
        cause = cause.__cause__ or cause.__context__


def teacher_error(error: BaseException, *, where: str, attempts: int, usage: Usage) -> TeacherError:
    """The `TeacherError` for a call that failed after the client's retries.

    `where` names the server (URL and model) for the message; it must never
    contain a key.
    """
    kind = _kind(error)
    if kind is None:
        status = getattr(error, "status_code", None)
        detail = f"HTTP {status}" if status is not None else type(error).__name__
        return TeacherError("server_error", f"{where}: request rejected ({detail}); check model, base_url and api_key_env",
                            usage=usage)
    return TeacherError(kind, f"{where}: gave up after {attempts} attempts ({kind}: {type(error).__name__})",
                        usage=usage)
