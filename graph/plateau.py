"""The loop's decisions after training: which candidate to keep, whether it replaces the adapter in use, whether to go on.

Stopping: validation plateau, the selection strategy's own reason (the full pool is spent after one
round), budget, round limit, or nothing left to fix.
"""

from __future__ import annotations

from collections.abc import Sequence

from gaptune.graph.state import CandidateResult


def best_candidate(results: Sequence[CandidateResult], order: Sequence[str]) -> tuple[CandidateResult, str]:
    """The candidate with the best val accuracy (ties: config order), and why, for the trace."""
    ranked = sorted(results, key=lambda c: (-c["val_acc"], order.index(c["candidate"])))
    best = ranked[0]
    why = f"{best['candidate']}: highest val accuracy ({best['val_acc']:.3f})"
    if len(ranked) > 1:
        why += " among " + ", ".join(f"{c['candidate']}={c['val_acc']:.3f}" for c in ranked)
    return best, why


def replaces_incumbent(candidate_val: float, current_val: float, rule: str) -> bool:
    """Whether the round's best candidate replaces the adapter in use (the base student in round 1).

    `if-not-worse`: only at equal or higher val accuracy, so a round can never
    leave the student worse on val than it started; `always`: every round's
    best candidate is kept (an experiment measuring one round's data).
    """
    return rule == "always" or candidate_val >= current_val


def plateau_update(best_val: float, stale_rounds: int, val_acc: float, min_delta: float) -> tuple[float, int]:
    """New (best, stale count): a round counts as progress only if it beats the best by min_delta."""
    if val_acc >= best_val + min_delta:
        return val_acc, 0
    return max(best_val, val_acc), stale_rounds + 1


def stop_reason(
    *, round_: int, max_rounds: int, stale_rounds: int, patience: int, used: int, budget: int,
    selector_stop: str | None = None,
) -> str | None:
    """Why the loop should stop after `round_`, or None to go on; `selector_stop` is the strategy's own reason."""
    if stale_rounds >= patience:
        return f"plateau: no val gain >= min_delta for {stale_rounds} round(s)"
    if selector_stop is not None:
        return selector_stop
    if used >= budget:
        return f"budget spent: {used} of {budget} pool samples used"
    if round_ >= max_rounds:
        return f"max_rounds reached ({max_rounds})"
    return None
