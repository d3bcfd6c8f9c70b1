"""Retrying teacher calls: classify a failure, back off, count it, and finally give up as a `TeacherError`.

Every retried fault is counted by kind in the returned `Usage`, so a case that
recovered after two 429s still shows them in the trace.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import openai

from gaptune.agents.llm.errors import FaultKind, TeacherError
from gaptune.data.records import Usage

T = TypeVar("T")


class PermanentError(Exception):
    """A failure retrying cannot fix (bad request, wrong key, missing log-probabilities)."""

    def __init__(self, kind: FaultKind, message: str) -> None:
        super().__init__(message)
        self.kind: FaultKind = kind


def classify(error: BaseException) -> FaultKind | None:
    """The fault kind of a retryable error, or None for errors retrying cannot fix."""
    if isinstance(error, (openai.APITimeoutError, httpx.TimeoutException, TimeoutError)):
        return "timeout"
    if isinstance(error, openai.RateLimitError):
        return "rate_limit"
    if isinstance(error, openai.APIStatusError):
        return "server_error" if error.status_code >= 500 else None
    if isinstance(error, (openai.APIConnectionError, httpx.TransportError, ConnectionError)):
        return "unreachable"
    if isinstance(error, (openai.APIResponseValidationError, json.JSONDecodeError, ValueError)):
        return "malformed"
    return None


def call_with_retries(
    call: Callable[[], T],
    *,
    max_retries: int,
    backoff_s: float,
    where: str,
    usage: Usage,
) -> T:
    """Run `call`, retrying retryable faults with exponential backoff; faults are added to `usage.faults`.

    `where` names the server (URL and model) for the error message; it must
    never contain a key.
    """
    for attempt in range(max_retries + 1):
        try:
            return call()
        except PermanentError as error:
            raise TeacherError(error.kind, f"{where}: {error}", usage=usage) from error
        except Exception as error:
            kind = classify(error)
            if kind is None:
                status = getattr(error, "status_code", None)
                detail = f"HTTP {status}" if status is not None else type(error).__name__
                raise TeacherError(
                    "server_error", f"{where}: request rejected ({detail}); check model, base_url and api_key_env",
                    usage=usage,
                ) from error
            usage.faults[kind] = usage.faults.get(kind, 0) + 1
            if attempt == max_retries:
                raise TeacherError(
                    kind, f"{where}: gave up after {max_retries + 1} attempts ({kind}: {type(error).__name__})",
                    usage=usage,
                ) from error
            time.sleep(_backoff(error, attempt, backoff_s))
    raise AssertionError("unreachable")


def _backoff(error: BaseException, attempt: int, backoff_s: float) -> float:
    """Exponential backoff; a server's Retry-After wins when it asks for longer (capped at a minute)."""
    delay = backoff_s * (2**attempt)
    response = getattr(error, "response", None)
    retry_after = response.headers.get("retry-after") if response is not None else None
    if retry_after:
        with contextlib.suppress(ValueError):
            delay = max(delay, min(float(retry_after), 60.0))
    return delay
