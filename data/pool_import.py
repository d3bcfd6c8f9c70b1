"""`gaptune pool import`: a user's pool, streamed into one gaptune pool file, bad rows set aside.

Sources are whatever `load_samples` reads (LLaVA JSON/JSONL, a dataset saved
with `save_to_disk` or a parquet/arrow folder, an image folder with
metadata.jsonl), read row by row: a JSONL source of any size is held one row
at a time. The output directory holds:

    pool.jsonl      the accepted samples, LLaVA JSONL with gaptune's metadata (`pool.path` reads it)
    rejects.jsonl   one line per bad row: file, row, field, reason (nothing is dropped silently)
    import.sqlite   the ids taken so far and the progress: rows read, bytes of both files committed

A bad row (bad JSON, a missing or unreadable image, an empty answer, a
repeated id) is a counted reject, never a stop. Every `chunk` rows the two
files are flushed to disk and the progress is committed in the same SQLite
transaction as the chunk's ids, so a kill at any point loses nothing: a second
run truncates both files to the committed bytes, skips the rows already read
and goes on. A finished import run again is a no-op; another source into the
same directory is refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import IO, Any

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict
from tqdm import tqdm

from gaptune.data.engine import Engine, LocalEngine
from gaptune.data.errors import DataError
from gaptune.data.llava_format import RowProblem, RowSamples, llava_row
from gaptune.data.loaders import iter_rows
from gaptune.data.sample import Sample
from gaptune.data.world.world import WORLD_SCHEME

POOL_FILE = "pool.jsonl"
REJECTS_FILE = "rejects.jsonl"
STATE_FILE = "import.sqlite"
DEFAULT_CHUNK = 5000


class ImportReport(BaseModel):
    """What an import holds once this call returns (totals over every run that built it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    pool: str
    rows: int
    samples: int
    rejected: int
    rejects: str
    resumed_at_row: int
    complete: bool
    reasons: dict[str, int]  # reject reason (the field) -> rows


def _identity(source: Path | str) -> str:
    """What makes a source the same source on resume: its path, and for a file its size and mtime."""
    path = Path(source)
    stat = path.stat() if path.is_file() else None
    return json.dumps([str(path.resolve()) if path.exists() else str(source),
                       None if stat is None else [stat.st_size, int(stat.st_mtime)]])


def _open_state(out: Path, identity: str) -> sqlite3.Connection:
    db = sqlite3.connect(out / STATE_FILE)
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS ids (id TEXT PRIMARY KEY) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS reasons (field TEXT PRIMARY KEY, rows INTEGER NOT NULL);
        """
    )
    with db:
        db.execute("INSERT OR IGNORE INTO meta VALUES ('source', ?)", (identity,))
        for key in ("rows", "samples", "rejected", "pool_bytes", "rejects_bytes", "complete"):
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, '0')", (key,))
    stored = db.execute("SELECT value FROM meta WHERE key = 'source'").fetchone()[0]
    if stored != identity:
        db.close()
        raise DataError(f"{out} holds an import of another source ({json.loads(stored)[0]}), or that file changed "
                        "since; choose another --out or delete the folder")
    return db


def _meta(db: sqlite3.Connection) -> dict[str, int]:
    return {key: int(value) for key, value in db.execute("SELECT key, value FROM meta WHERE key != 'source'")}


def _open_truncated(path: Path, size: int) -> IO[str]:
    """`path` for appending, cut back to `size` bytes: what a killed run wrote after its last commit goes."""
    handle = path.open("a+", encoding="utf-8")
    handle.truncate(size)
    handle.seek(size)
    return handle


def check_image(ref: str) -> str | None:
    """None when the image opens as an image, else why not (a world ref is generated, always fine)."""
    if ref.startswith(WORLD_SCHEME):
        return None
    try:
        with Image.open(ref) as image:
            image.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as error:
        return f"image {ref!r} cannot be read as an image ({type(error).__name__}: {error})"
    return None


def _reject(row: RowProblem | RowSamples, field: str, reason: str) -> dict[str, Any]:
    return {"file": row.file, "row": row.row, "unit": row.unit, "field": field, "reason": reason}


class ImageCheckWorker:
    """The engine's worker for `verify_images`: rows {ref} -> {problem} ("" when the image reads)."""

    def __call__(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"problem": check_image(row["ref"]) or ""} for row in rows]


IMAGE_BATCH = 64


def import_pool(source: Path | str, out: Path, *, image_root: Path | None = None, verify_images: bool = True,
                chunk: int = DEFAULT_CHUNK, progress: bool = True, limit: int | None = None,
                engine: Engine | None = None) -> ImportReport:
    """Import `source` into `out` (created if needed); resumable, idempotent once complete.

    `verify_images` opens each image's header (a corrupt file is a reject, not a crash at training), a chunk of
    rows at a time on `engine` (default: this process); `limit` stops after that many source rows (a sample of a
    huge pool; the import is then incomplete). Only this process writes the files.
    """
    engine = engine or LocalEngine()
    out.mkdir(parents=True, exist_ok=True)
    with closing(_open_state(out, _identity(source))) as db:
        done = _meta(db)
        if done["complete"]:
            return _report(db, source, out, resumed_at=done["rows"])
        pool = _open_truncated(out / POOL_FILE, done["pool_bytes"])
        rejects = _open_truncated(out / REJECTS_FILE, done["rejects_bytes"])
        with pool, rejects:
            rows = iter_rows(source, image_root)
            bar = tqdm(total=None, desc="pool: import", unit="row", initial=done["rows"],
                       disable=None if progress else True)
            counts = dict(done)
            pending_ids: set[str] = set()
            reasons: dict[str, int] = {}
            unread = islice(rows, done["rows"], limit)  # rows read before a kill are already in the files
            while batch := list(islice(unread, chunk - counts["rows"] % chunk)):
                images = _image_problems(batch, engine) if verify_images else {}
                for row in batch:
                    _take(db, row, pool, rejects, counts, pending_ids, reasons, images)
                counts["rows"] += len(batch)
                bar.update(len(batch))
                _commit(db, pool, rejects, counts, pending_ids, reasons)
            if limit is None or counts["rows"] < limit:
                counts["complete"] = 1
            _commit(db, pool, rejects, counts, pending_ids, reasons)
            bar.close()
        return _report(db, source, out, resumed_at=done["rows"])


def _image_problems(batch: list[RowSamples | RowProblem], engine: Engine) -> dict[str, str]:
    """Every image of the batch's samples checked on the engine: ref -> why it cannot be read ("" when it can)."""
    refs = list(dict.fromkeys(ref for row in batch if isinstance(row, RowSamples)
                              for sample in row.samples for ref in sample.images))
    checked = engine.map(ImageCheckWorker, {}, ({"ref": ref} for ref in refs), batch_size=IMAGE_BATCH)
    return {ref: result["problem"] for ref, result in zip(refs, checked, strict=True)}


def _take(db: sqlite3.Connection, row: RowSamples | RowProblem, pool: IO[str], rejects: IO[str],
          counts: dict[str, int], pending_ids: set[str], reasons: dict[str, int], images: dict[str, str]) -> None:
    """One source row: its samples appended to the pool, or the row to the rejects with the reason."""
    problem: tuple[str, str] | None = None
    if isinstance(row, RowProblem):
        problem = (row.field, row.message)
    else:
        for sample in row.samples:
            problem = problem or _sample_problem(db, sample, pending_ids, images)
    if problem is not None:
        rejects.write(json.dumps(_reject(row, *problem), ensure_ascii=False) + "\n")
        counts["rejected"] += 1
        reasons[problem[0]] = reasons.get(problem[0], 0) + 1
        return
    assert isinstance(row, RowSamples)
    for sample in row.samples:
        pool.write(json.dumps(llava_row(sample), ensure_ascii=False) + "\n")
        pending_ids.add(sample.id)
        counts["samples"] += 1


def _sample_problem(db: sqlite3.Connection, sample: Sample, pending_ids: set[str],
                    images: dict[str, str]) -> tuple[str, str] | None:
    if not sample.answer.strip():
        return "answer", "empty answer"
    if sample.id in pending_ids or db.execute("SELECT 1 FROM ids WHERE id = ?", (sample.id,)).fetchone():
        return "id", f"duplicate id {sample.id!r} (the first one is kept)"
    for k, ref in enumerate(sample.images):
        if images.get(ref):
            return f"image[{k}]", images[ref]
    return None


def _commit(db: sqlite3.Connection, pool: IO[str], rejects: IO[str], counts: dict[str, int],
            pending_ids: set[str], reasons: dict[str, int]) -> None:
    """Both files on disk first, then ids, reasons and byte offsets in one transaction."""
    for handle in (pool, rejects):
        handle.flush()
        os.fsync(handle.fileno())
    counts["pool_bytes"], counts["rejects_bytes"] = pool.tell(), rejects.tell()
    with db:
        db.executemany("INSERT OR IGNORE INTO ids VALUES (?)", [(i,) for i in pending_ids])
        for field, n in reasons.items():
            db.execute("INSERT INTO reasons VALUES (?, ?) ON CONFLICT(field) DO UPDATE SET rows = rows + ?",
                       (field, n, n))
        db.executemany("UPDATE meta SET value = ? WHERE key = ?", [(str(v), k) for k, v in counts.items()])
    pending_ids.clear()
    reasons.clear()


def _report(db: sqlite3.Connection, source: Path | str, out: Path, *, resumed_at: int) -> ImportReport:
    meta = _meta(db)
    reasons = dict(db.execute("SELECT field, rows FROM reasons ORDER BY rows DESC").fetchall())
    return ImportReport(source=str(source), pool=str(out / POOL_FILE), rows=meta["rows"], samples=meta["samples"],
                        rejected=meta["rejected"], rejects=str(out / REJECTS_FILE), resumed_at_row=resumed_at,
                        complete=bool(meta["complete"]), reasons=reasons)


__all__ = ["POOL_FILE", "REJECTS_FILE", "STATE_FILE", "ImportReport", "check_image", "import_pool"]

