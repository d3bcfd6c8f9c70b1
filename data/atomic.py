"""No partial writes: files and directories appear whole or not at all.

Everything gaptune persists (run files, caches, indexes, students, adapters)
is written to a temporary sibling and moved into place with one rename, so a
run killed mid-write leaves the previous version, never half of a new one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO


def write_text_atomic(path: Path, text: str) -> None:
    with open_atomic(path) as stream:
        stream.write(text)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with open_atomic_binary(path) as stream:
        stream.write(data)


@contextmanager
def open_atomic(path: Path) -> Iterator[TextIO]:
    """A text stream (UTF-8) that becomes `path` when the block succeeds; on any error `path` is left as it was.

    For files written piece by piece (an export streamed row by row) that
    would not fit one `write_text_atomic` string.
    """
    with _staged(path) as temp, temp.open("w", encoding="utf-8") as stream:
        yield stream


@contextmanager
def open_atomic_binary(path: Path) -> Iterator[BinaryIO]:
    """`open_atomic` for bytes."""
    with _staged(path) as temp, temp.open("wb") as stream:
        yield stream


@contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path`, renamed over it when the block succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def publish_directory(target: Path) -> Iterator[Path]:
    """Yield an empty staging directory; when the block succeeds it replaces `target`, else it is removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
