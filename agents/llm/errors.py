"""What a teacher raises when it gives up on a case, and the kinds of fault it survives."""

from __future__ import annotations

from typing import Literal

from gaptune.data.errors import UserError
from gaptune.data.records import Usage

FaultKind = Literal["timeout", "rate_limit", "server_error", "malformed", "unreachable"]


class TeacherError(RuntimeError):
    """A teacher gave up on one case after its retries and fallback.

    The graph counts it as a skip; a run never dies because a teacher
    misbehaved. `kind` says what went wrong, the message names the server URL
    (never a key), and `usage` carries what the failed attempts still cost.
    """

    def __init__(self, kind: FaultKind, message: str, *, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.kind: FaultKind = kind
        self.usage = usage if usage is not None else Usage()


class TeacherUnavailable(UserError):
    """A teacher the run cannot go on without: its server is down, rejects the key, or failed a round's cases.

    Unlike `TeacherError` (one case, counted and skipped) this ends the run with
    one line naming the teacher, its server and the last fault; the run resumes
    where it stopped once the teacher is fixed.
    """
