"""metrics.json as a typed contract: what a finished run achieved, written by `finish`, read by the report,
the CLI and the experiment harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from gaptune.data.errors import RunDirectoryError


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TeacherBill(_Part):
    """A round's teacher calls, tokens, latency, cost (None when unpriced), faults survived, cases given up."""

    calls: float = 0
    tokens_in: float = 0
    tokens_out: float = 0
    latency_s: float = 0
    cost_usd: float | None = None
    faults: float = 0
    failed_cases: float = 0


class RoundMetrics(_Part):
    round: int
    val_acc: float
    test_acc: float
    train_size: int
    gaps: dict[str, int]
    chosen: str | None
    why: str
    candidates: dict[str, float]
    teacher_usage: TeacherBill
    diagnosis: dict[str, int]


class DataFileReport(_Part):
    """One user data file (by config key): samples read, rows or duplicate ids skipped, the first problems."""

    file: str
    samples: int
    skipped: int
    problems: list[str]
    notes: list[str]


class RunMetrics(_Part):
    task: str
    selection: str
    stop_reason: str | None
    rounds: list[RoundMetrics]
    used: list[str]  # the selected sample ids (pool or ceiling) in selection order: what trained beside the probe
    data: dict[str, DataFileReport]

    @property
    def last(self) -> RoundMetrics:
        return self.rounds[-1]


def metrics_from_state(config: Any, state: dict[str, Any], data_files: dict[str, Any] | None = None) -> RunMetrics:
    return RunMetrics.model_validate({
        "task": config.task.name, "selection": config.selection, "stop_reason": state.get("stop_reason"),
        "rounds": [{**r, "teacher_usage": r["teacher_usage"] or {}, "diagnosis": r.get("diagnosis", {})}
                   for r in state.get("history", [])],
        "used": state.get("used", []), "data": data_files or {},
    })


def read_metrics(path: Path) -> RunMetrics:
    """metrics.json of a finished run; one clear error for a file of another gaptune version."""
    try:
        return RunMetrics.model_validate_json(path.read_text())
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RunDirectoryError(f"{path}: not the metrics of this gaptune version (a run directory of an older "
                                f"version? `gaptune resume` cannot help; start a new run): {where}: {first['msg']}"
                                ) from None
