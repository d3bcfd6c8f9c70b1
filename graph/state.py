"""The loop's state contract: what each node reads and writes, and what parallel branches receive.

The state holds ids, paths and small records only, so checkpoints stay small;
samples, models and teachers live in `Resources`, which nodes get from the
runtime context. The shared pydantic records (`Critique`, `Usage`,
`SelectionItem`) are kept as themselves, not as dumps, and the checkpointer
restores exactly those classes (`CHECKPOINTED_RECORDS`). Lists written by
parallel branches (`Send`) are per round: they accumulate with
`operator.add`, and `probe` starts a round by replacing them with
`Overwrite([])`.
"""

from __future__ import annotations

import operator
from typing import Annotated, NotRequired, TypedDict

from langgraph.types import Overwrite

from gaptune.data.records import Critique, SelectionItem, Usage
from gaptune.training.config import CandidateKind

# The pydantic records the state holds: the checkpointer restores these types and no others.
CHECKPOINTED_RECORDS = [(record.__module__, record.__name__) for record in (Critique, SelectionItem, Usage)]

# ---- records kept in the state ---------------------------------------------------------------


class RoundRecord(TypedDict):
    round: int
    val_acc: float
    test_acc: float
    train_size: int
    gaps: dict[str, int]
    chosen: str | None
    why: str
    candidates: dict[str, float]
    teacher_usage: dict[str, float | None]
    diagnosis: dict[str, int]


class CritiqueCandidate(TypedDict):
    """One critic's verdict on one case and the blamed gold step's label, when known."""

    critic: str
    critique: Critique
    true_skill: str | None


class JudgedCritique(TypedDict):
    """The verdict kept for a case, with the judge's reason and what judging cost."""

    critique: Critique
    judge_reason: str
    judge_usage: Usage
    true_skill: str | None


class TeacherFault(TypedDict):
    """A case a critic gave up on after its retries and fallback: a counted skip."""

    case: str
    critic: str
    kind: str
    message: str
    usage: Usage


class GapHits(TypedDict):
    """One gap's ranked retrieval, before cross-gap dedupe."""

    gap: str
    quota: int
    items: list[SelectionItem]


class CandidateResult(TypedDict):
    """A trained candidate adapter and its validation accuracy."""

    candidate: CandidateKind
    adapter: str
    val_acc: float
    train_size: int
    steps: int
    final_loss: float


# ---- the state ---------------------------------------------------------------------------


class LoopState(TypedDict, total=False):
    round: int
    current_adapter: str | None
    wrong_cases: list[str]
    critics: list[str]
    critique_candidates: Annotated[list[CritiqueCandidate], operator.add]
    teacher_faults: Annotated[list[TeacherFault], operator.add]
    critiques: list[JudgedCritique]
    gaps: dict[str, int]
    case_gaps: dict[str, str]
    diagnosis: dict[str, int]
    gap_hits: Annotated[list[GapHits], operator.add]
    selected: list[str]
    used: list[str]
    candidates: Annotated[list[CandidateResult], operator.add]
    history: list[RoundRecord]
    best_val: float
    stale_rounds: int
    stop_reason: str | None


# ---- what parallel branches receive (`Send` payloads) -----------------------------------------


class CritiqueTask(TypedDict):
    round: int
    case: str
    critic: str


class RetrieveTask(TypedDict):
    round: int
    gap: str
    quota: int
    errors: int
    used: list[str]


# ---- what each node writes ---------------------------------------------------------------


class StartUpdate(TypedDict):
    round: int
    history: list[RoundRecord]
    best_val: float
    stale_rounds: int
    used: list[str]
    current_adapter: str | None
    stop_reason: str | None


class ProbeUpdate(TypedDict):
    round: int
    wrong_cases: list[str]
    critics: list[str]
    critique_candidates: Overwrite
    teacher_faults: Overwrite
    gap_hits: Overwrite
    candidates: Overwrite
    critiques: list[JudgedCritique]
    gaps: dict[str, int]
    diagnosis: dict[str, int]
    selected: list[str]
    stop_reason: NotRequired[str]


class CritiqueUpdate(TypedDict, total=False):
    critique_candidates: list[CritiqueCandidate]
    teacher_faults: list[TeacherFault]


class JudgeUpdate(TypedDict):
    critiques: list[JudgedCritique]


class ClassifyUpdate(TypedDict):
    gaps: dict[str, int]
    case_gaps: dict[str, str]
    diagnosis: dict[str, int]


class RetrieveUpdate(TypedDict):
    gap_hits: list[GapHits]


class SelectionUpdate(TypedDict):
    selected: list[str]
    used: list[str]
    stop_reason: NotRequired[str]


class TrainUpdate(TypedDict):
    candidates: list[CandidateResult]


class ChooseUpdate(TypedDict):
    history: list[RoundRecord]
    current_adapter: str | None
    best_val: float
    stale_rounds: int
    stop_reason: str | None
