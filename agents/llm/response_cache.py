"""A response cache keyed by (backend, model, prompt, params): a resumed or repeated run never pays twice.

One JSON file per key under `cache_dir/responses/`, written to a temp file and
renamed, so concurrent writers and crashes never leave a torn entry. Keys are
built from the request only; API keys and base URLs are never part of them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from gaptune.data.atomic import write_text_atomic


def cache_key(payload: dict[str, Any]) -> str:
    """A stable hash of a request description (must be JSON-serialisable and hold no secrets)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Stores JSON values by key on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return value if isinstance(value, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        write_text_atomic(self._path(key), json.dumps(value, ensure_ascii=False))
