"""Is a critic still working this round? A dead teacher must end the run, never read as "no gap found".

Two rules, both per critic and per round:

- fail fast: after `fail_fast_after` failed cases in a row (no success in
  between) the critic's remaining cases of the round are not sent; each is
  recorded as a fault at once instead of spending every retry on a server
  that is gone;
- the round's verdict: a critic that failed every case of the round, or more
  than `max_failed_share` of them, stops the run with `TeacherUnavailable`
  naming the critic, its server and the last fault. Below that share the
  failed cases are counted skips, shown in the round's metrics and report.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gaptune.agents.llm.errors import TeacherError, TeacherUnavailable


@dataclass(frozen=True)
class CaseFault:
    """One case a critic gave up on: which critic, what kind of fault, what it said."""

    critic: str
    kind: str
    message: str


class FailFast:
    """Consecutive failed cases per (round, critic); thread-safe, since critique branches run in parallel."""

    def __init__(self, fail_fast_after: int) -> None:
        self.fail_fast_after = fail_fast_after
        self._lock = threading.Lock()
        self._streak: dict[tuple[int, str], int] = {}
        self._last: dict[tuple[int, str], TeacherError] = {}

    def blocked(self, round_: int, critic: str) -> TeacherError | None:
        """The error to record instead of sending, when the critic failed too many cases in a row this round."""
        with self._lock:
            streak = self._streak.get((round_, critic), 0)
            if streak < self.fail_fast_after:
                return None
            last = self._last[round_, critic]
        return TeacherError(last.kind, f"not sent: {critic} failed its last {streak} cases of round {round_} "
                                       f"in a row (last: {last})")

    def record(self, round_: int, critic: str, error: TeacherError | None) -> None:
        with self._lock:
            if error is None:
                self._streak[round_, critic] = 0
            else:
                self._streak[round_, critic] = self._streak.get((round_, critic), 0) + 1
                self._last[round_, critic] = error


def check_round(faults: Sequence[CaseFault], *, cases: int, critics: Mapping[str, str], round_: int,
                max_failed_share: float, resume_hint: str) -> None:
    """Raise `TeacherUnavailable` for the first critic (config order) that failed too much of this round.

    `critics` maps each critic's name to where it runs (model and server URL);
    `cases` is the number of wrong cases every critic was sent.
    """
    if cases == 0:
        return
    for name, where in critics.items():
        failed = [fault for fault in faults if fault.critic == name]
        if not failed or (len(failed) < cases and len(failed) / cases <= max_failed_share):
            continue
        last = failed[-1]
        raise TeacherUnavailable(
            f"critic {name!r} ({where}) failed {len(failed)} of {cases} cases in round {round_} "
            f"(over teacher.max_failed_share={max_failed_share:g}; last fault {last.kind}: {last.message}); "
            f"fix the teacher, then {resume_hint}"
        )
