"""Where gaptune keeps what it builds once: students, pool indexes, teacher replies, decoded images."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$GAPTUNE_CACHE`, else `$XDG_CACHE_HOME/gaptune`, else `~/.cache/gaptune`."""
    explicit = os.environ.get("GAPTUNE_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gaptune"
