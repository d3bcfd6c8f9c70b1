"""The loop's state: ids, paths and small records only, so checkpoints stay small.

Fields written by parallel branches (`Send`) carry reducers. Those lists are
per round: a node resets one by writing None, which the reducer turns into [].
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict


def extend_or_reset(current: list[Any] | None, update: list[Any] | None) -> list[Any]:
    """Append branch results; None clears the list for a new round."""
    if update is None:
        return []
    return [*(current or []), *update]


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


class LoopState(TypedDict, total=False):
    round: int
    current_adapter: str | None
    wrong_cases: list[str]
    critique_candidates: Annotated[list[dict[str, Any]], extend_or_reset]
    critiques: Annotated[list[dict[str, Any]], extend_or_reset]
    teacher_faults: Annotated[list[dict[str, Any]], extend_or_reset]
    gaps: dict[str, int]
    gap_of_skill: dict[str, str]
    diagnosis: dict[str, int]
    gap_hits: Annotated[list[dict[str, Any]], extend_or_reset]
    selected: list[str]
    used: list[str]
    candidates: Annotated[list[dict[str, Any]], extend_or_reset]
    history: list[RoundRecord]
    best_val: float
    stale_rounds: int
    stop_reason: str | None
