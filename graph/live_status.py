"""status.json: where a running loop is, rewritten as it goes, for `gaptune watch` in another process.

One pydantic schema (`LiveStatus`) is shared by the writer (`StatusFile`, an
observer of the run) and the reader (`gaptune watch`). The file is replaced
atomically, at every node boundary and at most every `MIN_INTERVAL_S` in
between (teacher calls and training steps come many times a second; a
training's first and last steps always), so a reader never sees half of it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from gaptune.data.atomic import write_text_atomic
from gaptune.data.live_events import LiveEvent, TeacherCall, TrainingStep
from gaptune.graph.resources import Resources

STATUS_FILE = "status.json"
# Twice a second is as fast as a person reads a changing number.
MIN_INTERVAL_S = 0.5


class Progress(BaseModel):
    done: int = 0
    total: int = 0


class TrainingProgress(BaseModel):
    step: int = 0
    max_steps: int = 0
    loss: float | None = None


class RoundScores(BaseModel):
    round: int
    val_acc: float
    test_acc: float
    chosen: str | None = None


class TeacherSpend(BaseModel):
    calls: int = 0
    cached_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    faults: int = 0
    cost_usd: float | None = None

    def add(self, calls: float, cached: float, tokens_in: float, tokens_out: float, faults: float,
            cost: float | None) -> None:
        self.calls += int(calls)
        self.cached_calls += int(cached)
        self.tokens_in += int(tokens_in)
        self.tokens_out += int(tokens_out)
        self.faults += int(faults)
        if cost is not None:
            self.cost_usd = (self.cost_usd or 0.0) + cost


class LiveStatus(BaseModel):
    """What `gaptune watch` shows: the loop's position, this round's progress, and the run's results so far."""

    pid: int
    host: str
    updated: float
    round: int = 0
    stage: str = "starting"
    running: dict[str, int] = Field(default_factory=dict)
    cases: Progress = Field(default_factory=Progress)
    case_faults: int = 0
    retrieval: Progress = Field(default_factory=Progress)
    selected: int | None = None
    training: dict[str, TrainingProgress] = Field(default_factory=dict)
    candidates: dict[str, float] = Field(default_factory=dict)
    history: list[RoundScores] = Field(default_factory=list)
    # Rounds finished before this round (from their records), and this round's calls as they happen.
    teacher_before: TeacherSpend = Field(default_factory=TeacherSpend)
    teacher_round: TeacherSpend = Field(default_factory=TeacherSpend)
    finished: bool = False
    outcome: str | None = None

    @property
    def teacher_total(self) -> TeacherSpend:
        total = self.teacher_before.model_copy()
        r = self.teacher_round
        total.add(r.calls, r.cached_calls, r.tokens_in, r.tokens_out, r.faults, r.cost_usd)
        return total


def read_status(run_dir: Path) -> LiveStatus | None:
    """The run's last published status; None before the run has published one."""
    path = run_dir / STATUS_FILE
    try:
        return LiveStatus.model_validate_json(path.read_text())
    except FileNotFoundError:
        return None


def _scores(history: list[dict[str, Any]]) -> list[RoundScores]:
    return [RoundScores(round=r["round"], val_acc=r["val_acc"], test_acc=r["test_acc"], chosen=r.get("chosen"))
            for r in history]


def _spend_of(history: list[dict[str, Any]]) -> TeacherSpend:
    spend = TeacherSpend()
    for r in history:
        usage = r.get("teacher_usage") or {}
        spend.add(usage.get("calls") or 0, 0, usage.get("tokens_in") or 0, usage.get("tokens_out") or 0,
                  usage.get("faults") or 0, usage.get("cost_usd"))
    return spend


class StatusFile:
    """The observer that keeps status.json current."""

    def __init__(self, res: Resources, state: dict[str, Any]) -> None:
        self.path = res.run.root / STATUS_FILE
        self.critics = len(res.config.teacher.critics)
        history = list(state.get("history", []))
        self.status = LiveStatus(pid=os.getpid(), host=socket.gethostname(), updated=time.time(),
                                 round=state.get("round", 0), stage="resuming" if history else "starting",
                                 history=_scores(history), teacher_before=_spend_of(history))
        self._lock = threading.Lock()
        self._written = 0.0
        self._write(force=True)

    def _write(self, *, force: bool) -> None:
        """Publish the status (the caller holds the lock, or is the constructor)."""
        now = time.time()
        if not force and now - self._written < MIN_INTERVAL_S:
            return
        self.status.updated = now
        write_text_atomic(self.path, self.status.model_dump_json(indent=1) + "\n")
        self._written = now

    def node_started(self, node: str, key: UUID, inputs: dict[str, Any]) -> None:
        with self._lock:
            s = self.status
            s.stage = node
            s.running[node] = s.running.get(node, 0) + 1
            if node == "probe":
                s.round = int(inputs.get("round", s.round)) + 1
                s.cases, s.case_faults, s.retrieval = Progress(), 0, Progress()
                s.selected, s.training, s.candidates = None, {}, {}
                s.teacher_round = TeacherSpend()
            self._write(force=True)

    def node_finished(self, node: str, key: UUID, update: dict[str, Any]) -> None:
        with self._lock:
            s = self.status
            self._leave(node)
            if node == "probe":
                s.cases.total = len(update.get("wrong_cases", [])) * self.critics
            elif node == "critique":
                s.cases.done += 1
                s.case_faults += len(update.get("teacher_faults", []))
            elif node == "classify":
                s.retrieval = Progress(total=len(update.get("gaps", {})))
            elif node == "retrieve_gap":
                s.retrieval.done += 1
            elif node in ("merge_selection", "select_data"):
                s.selected = len(update.get("selected", []))
            elif node == "train":
                for c in update.get("candidates", []):
                    s.candidates[c["candidate"]] = c["val_acc"]
            elif node in ("start", "choose"):
                history = update.get("history", [])
                s.history = _scores(history)
                s.teacher_before, s.teacher_round = _spend_of(history), TeacherSpend()
            self._write(force=True)

    def _leave(self, node: str) -> None:
        left = self.status.running.get(node, 0) - 1
        if left > 0:
            self.status.running[node] = left
        else:
            self.status.running.pop(node, None)

    def node_failed(self, node: str, key: UUID, error: BaseException) -> None:
        with self._lock:
            self._leave(node)
            self._write(force=True)

    def live_event(self, event: LiveEvent) -> None:
        with self._lock:
            if isinstance(event, TeacherCall):
                u = event.usage
                self.status.teacher_round.add(u.calls, u.cached_calls, u.tokens_in, u.tokens_out,
                                              sum(u.faults.values()), u.cost_usd)
                force = False
            elif isinstance(event, TrainingStep):
                first = event.label not in self.status.training
                self.status.training[event.label] = TrainingProgress(
                    step=event.step, max_steps=event.max_steps,
                    loss=event.loss if event.loss is not None else self.status.training.get(
                        event.label, TrainingProgress()).loss)
                force = first or event.step >= event.max_steps  # so that a short training is never invisible
            else:
                return
            self._write(force=force)

    def run_ended(self, state: dict[str, Any] | None, error: BaseException | None) -> None:
        with self._lock:
            s = self.status
            s.finished, s.running = True, {}
            if error is not None:
                s.stage, s.outcome = "stopped", f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            else:
                s.stage, s.outcome = "finished", (state or {}).get("stop_reason") or "finished"
            self._write(force=True)
