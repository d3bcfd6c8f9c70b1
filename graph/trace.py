"""The decision trace: one JSON line per agent decision, in the run directory.

Each event has a deterministic `event_id` (round/node/key). A node that is
re-run after a crash writes its events again; readers keep the last event per
id, so a resumed run's trace reads exactly like an uninterrupted one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_lock = threading.Lock()


class Trace:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event_id: str, *, round_: int, node: str, agent: str, inputs: dict[str, Any],
               output: Any, model: str = "", latency_s: float = 0.0) -> None:
        event = {
            "event_id": event_id, "time": time.time(), "round": round_, "node": node, "agent": agent,
            "inputs": inputs, "output": output, "model": model, "latency_s": round(latency_s, 4),
        }
        line = json.dumps(event, default=str)
        with _lock, self.path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()

    def events(self) -> list[dict[str, Any]]:
        return read_trace(self.path)


def read_trace(path: Path) -> list[dict[str, Any]]:
    """Events in first-seen order, the last write of each event_id winning; a torn last line is ignored."""
    latest: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return []
    for line in _lines(path):
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        latest[event["event_id"]] = event
    return list(latest.values())


def _lines(path: Path) -> Iterator[str]:
    with path.open() as handle:
        for line in handle:
            if line.strip():
                yield line
