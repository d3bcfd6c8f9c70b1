"""The teacher's roles as protocols: any backend that fulfils them can be swapped in."""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample
from gaptune.tools.critique import Critique, Usage

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


class Critic(Protocol):
    """Finds the first wrong step of an attempt and names the skill it lacked."""

    name: str

    def critique(self, sample: Sample, attempt: Attempt) -> Critique: ...


class JudgeDecision(BaseModel):
    """Which candidate critique the judge kept, and why (both go into the trace)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    reason: str
    usage: Usage = Field(default_factory=Usage)


class Judge(Protocol):
    """Picks one of several critiques of the same case (the subtask-ensemble idea)."""

    name: str

    def pick(self, sample: Sample, attempt: Attempt, candidates: list[Critique]) -> JudgeDecision: ...
