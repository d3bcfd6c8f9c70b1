"""The run directory: everything a run produces, in one place, resumable from what it holds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gaptune.data.atomic import write_text_atomic


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints.sqlite"

    @property
    def trace(self) -> Path:
        return self.root / "trace.jsonl"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def report(self) -> Path:
        return self.root / "report.md"

    def round_dir(self, round_: int) -> Path:
        return self.root / "rounds" / f"{round_:02d}"

    def adapter(self, round_: int, candidate: str) -> Path:
        return self.round_dir(round_) / "adapters" / candidate

    def attempts(self, round_: int, split: str, candidate: str | None = None) -> Path:
        name = f"{split}_attempts.jsonl" if candidate is None else f"{split}_attempts.{candidate}.jsonl"
        return self.round_dir(round_) / name

    def write_json(self, path: Path, data: Any) -> None:
        write_text_atomic(path, json.dumps(data, indent=2, default=str) + "\n")
