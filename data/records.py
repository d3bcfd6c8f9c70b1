"""Records that several rooms share: what a teacher concluded, what it cost, what the retriever chose and why."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    """What producing one result cost: calls, tokens, time, money, and the faults survived on the way.

    `faults` counts retried failures by kind ("timeout", "rate_limit",
    "server_error", "malformed", "unreachable"), so a run that recovered still
    shows in its trace how often the teacher misbehaved. `cost_usd` stays None
    unless a price is configured: an unknown cost is not a zero cost.
    """

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    latency_s: float = 0.0
    cost_usd: float | None = None
    faults: dict[str, int] = Field(default_factory=dict)
    model: str = ""

    def __add__(self, other: Usage) -> Usage:
        return self.plus(other)

    def plus(self, other: Usage) -> Usage:
        """The sum of two usages (for totals per critique, per round, per run)."""
        faults = dict(self.faults)
        for kind, count in other.faults.items():
            faults[kind] = faults.get(kind, 0) + count
        costs = [cost for cost in (self.cost_usd, other.cost_usd) if cost is not None]
        models = [name for name in dict.fromkeys([*self.model.split(","), *other.model.split(",")]) if name]
        return Usage(
            calls=self.calls + other.calls,
            cached_calls=self.cached_calls + other.cached_calls,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            latency_s=self.latency_s + other.latency_s,
            cost_usd=sum(costs) if costs else None,
            faults=faults,
            model=",".join(models),
        )


def usage_totals(usages: Iterable[Usage], *, failed_cases: int = 0) -> dict[str, float | None]:
    """A round's teacher bill: calls, tokens, latency, cost (None when unpriced), every fault survived or not.

    `faults` counts every fault the teacher threw, recovered by a retry or
    not; `failed_cases` the cases given up after all retries.
    """
    total = sum(usages, Usage())
    return {"calls": float(total.calls), "tokens_in": float(total.tokens_in), "tokens_out": float(total.tokens_out),
            "latency_s": total.latency_s, "cost_usd": total.cost_usd,
            "faults": float(sum(total.faults.values())), "failed_cases": float(failed_cases)}


class Critique(BaseModel):
    """A teacher's verdict on one wrong attempt.

    `wrong_step` indexes the student's steps (0-based); it equals `len(steps)`
    when every step was right and only the final answer went wrong, and is
    None when the teacher could not locate the error. `usage` is empty for the
    free `reference` teacher.
    """

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    teacher: str
    method: str
    wrong_step: int | None
    missing_skill: str = Field(min_length=1)
    explanation: str = ""
    usage: Usage = Field(default_factory=Usage)


class JudgeDecision(BaseModel):
    """Which candidate critique the judge kept, and why (both go into the trace)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    reason: str
    usage: Usage = Field(default_factory=Usage)


class SelectionItem(BaseModel):
    """Why one pool sample was chosen: the gap, the query sent for it, and how that query ranked it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    gap: str
    query: str
    method: str
    score: float
    rank: int = Field(ge=1)


class Selection(BaseModel):
    """One round's chosen samples; `allocation` is the budget per gap, `shortfall` what a gap could not fill."""

    model_config = ConfigDict(extra="forbid")

    strategy: str
    budget: int
    allocation: dict[str, int]
    items: list[SelectionItem]
    shortfall: dict[str, int] = Field(default_factory=dict)

    @property
    def sample_ids(self) -> list[str]:
        return [item.sample_id for item in self.items]
