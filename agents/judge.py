"""Picking one critique among several teachers' (the subtask-ensemble idea).

With a judge model configured, the model compares the numbered candidates and
names the best with a reason. Without one, or when the judge model fails,
agreement voting decides: the majority on (wrong step, canonical skill), ties
broken by candidate order. Either way the decision carries its reason for the
trace, and picking never raises for a misbehaving model.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gaptune.agents.llm.backends import ChatBackend, build_backend
from gaptune.agents.llm.case_prompt import case_text, user_message
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.llm.structured_output import schema_instructions, structured_call
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique, JudgeDecision
from gaptune.data.sample import Sample
from gaptune.data.text import normalise
from gaptune.tools.classify_gaps import classify_gaps
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL


class Judge(Protocol):
    """Picks one of several critiques of the same case (the subtask-ensemble idea)."""

    name: str

    def pick(self, sample: Sample, attempt: Attempt, candidates: list[Critique]) -> JudgeDecision: ...


def _require(candidates: list[Critique]) -> None:
    if not candidates:
        raise ValueError("the judge needs at least one candidate critique")


class CanonicalSkill:
    """The gap classifier's mapping as a function: a free-text skill to the pool's label it counts as.

    The same mapping the round's gap profile uses (`classify_gaps` over the
    pool's skill vocabulary), so votes count "can't count objects" and
    "counting" as one skill. Each distinct text is classified once.
    """

    def __init__(self, vocabulary: Mapping[str, str], *, embedding_model: str = DEFAULT_EMBEDDING_MODEL) -> None:
        self.vocabulary = dict(vocabulary)
        self.embedding_model = embedding_model
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, skill: str) -> str:
        with self._lock:
            if skill not in self._known:
                mapping = classify_gaps([skill], self.vocabulary, embedding_model=self.embedding_model).mapping
                self._known[skill] = mapping[0].label if mapping else normalise(skill)
            return self._known[skill]


class VotingJudge:
    """Majority on (wrong_step, canonical skill); ties go to the earliest candidate."""

    name = "agreement-vote"

    def __init__(self, canonical: Callable[[str], str] = normalise) -> None:
        self.canonical = canonical

    def pick(self, sample: Sample, attempt: Attempt, candidates: list[Critique]) -> JudgeDecision:
        _require(candidates)
        keys = [(c.wrong_step, self.canonical(c.missing_skill)) for c in candidates]
        votes = Counter(keys)
        best = max(votes.values())
        index = next(i for i, key in enumerate(keys) if votes[key] == best)
        step, skill = keys[index]
        shown_step = "none" if step is None else step + 1
        return JudgeDecision(
            index=index,
            reason=f"{best} of {len(candidates)} critics agree on step {shown_step}, skill {skill!r}"
            + (" (tie broken by critic order)" if list(votes.values()).count(best) > 1 else ""),
        )


class Choice(BaseModel):
    model_config = ConfigDict(extra="ignore")

    best: int = Field(description="the number of the best candidate")
    reason: str = Field(default="", description="one sentence: why it is the most accurate diagnosis")

    @field_validator("best")
    @classmethod
    def _in_range(cls, value: int, info: ValidationInfo) -> int:
        count = (info.context or {}).get("count")
        if count is not None and not 1 <= value <= count:
            raise ValueError(f"best must be between 1 and {count}")
        return value


class LLMJudge:
    """A model compares the candidates; if it fails, voting decides and the reason says so."""

    def __init__(self, backend: ChatBackend, voting: VotingJudge) -> None:
        self.backend = backend
        self.voting = voting
        self.name = f"judge:{backend.name}"

    def pick(self, sample: Sample, attempt: Attempt, candidates: list[Critique]) -> JudgeDecision:
        _require(candidates)
        if len(candidates) == 1:
            return JudgeDecision(index=0, reason="only one candidate")
        listing = "\n".join(
            f"Candidate {i}: first wrong step {'unknown' if c.wrong_step is None else c.wrong_step + 1}, "
            f"missing skill {c.missing_skill!r}. {c.explanation}"
            for i, c in enumerate(candidates, start=1)
        )
        prompt = (
            "Several teachers diagnosed the same wrong answer of a student.\n\n"
            f"{case_text(sample, attempt)}\n\n{listing}\n\n"
            "Which candidate names the first wrong step and the missing skill most accurately?\n"
            + schema_instructions(Choice, {"best": 1, "reason": "step 1 miscounts, so counting is missing"})
        )
        messages = [user_message(prompt, sample, vision=self.backend.vision)]
        try:
            choice, usage = structured_call(self.backend, messages, Choice, context={"count": len(candidates)})
        except TeacherError as error:
            fallback = self.voting.pick(sample, attempt, candidates)
            return JudgeDecision(index=fallback.index, usage=error.usage,
                                 reason=f"judge {self.backend.name} failed ({error.kind}); {fallback.reason}")
        return JudgeDecision(index=choice.best - 1, reason=choice.reason or "chosen by the judge", usage=usage)


def decide(judge: Judge, sample: Sample, attempt: Attempt, candidates: list[Critique]) -> JudgeDecision | None:
    """The judge's pick among several critiques of one case; None when only one critic answered (nothing to pick)."""
    _require(candidates)
    return None if len(candidates) == 1 else judge.pick(sample, attempt, candidates)


def build_judge(config: TeacherConfig, *, cache_dir: Path, vocabulary: Mapping[str, str] | None = None,
                embedding_model: str = DEFAULT_EMBEDDING_MODEL, limiter: Limiter | None = None) -> Judge:
    """The configured judge model, or agreement voting when `teacher.judge` is not set.

    Votes are counted on canonical skills: pass the pool's skill `vocabulary`
    (label -> description, what the gap classifier maps onto) to count
    "counting objects" and "counting" as one; without it, a plain text
    normalisation decides. `limiter` is the run's one bound
    on teacher requests in flight, shared with the critics.
    """
    canonical: Callable[[str], str] = (
        normalise if vocabulary is None else CanonicalSkill(vocabulary, embedding_model=embedding_model))
    voting = VotingJudge(canonical)
    if config.judge is None:
        return voting
    limiter = limiter or request_limiter(config.max_concurrency)
    return LLMJudge(build_backend(config.judge, cache_dir=cache_dir, cache=config.cache, limiter=limiter), voting)
