"""Interrupted indexing resumes where it stopped and ends equal to an uninterrupted build."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gaptune.data.sample import Sample
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools import chroma_index
from gaptune.tools.pool_index import MANIFEST, PoolIndex, index_pool

pytestmark = pytest.mark.slow  # kills and restarts indexing processes

POOL_SIZE = 120
# The killed child's pool: about 540 groups, 4 s of embedding on 2 idle cores, so it cannot finish in the 0.2 s
# between polls (120 samples could, and once did: the child wrote its manifest before the kill landed).
KILLED_POOL_SIZE = 1000


class Killed(Exception):
    """Stands in for the process dying at this point."""


def _dies_after(samples: Iterator[Sample], n: int) -> Iterator[Sample]:
    for i, sample in enumerate(samples):
        if i == n:
            raise Killed
        yield sample


def test_a_run_killed_while_recording_resumes(tmp_path: Path) -> None:
    with pytest.raises(Killed):
        index_pool(_dies_after(pool(0, POOL_SIZE), 70), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS,
                   progress=False)
    assert not (tmp_path / MANIFEST).exists()
    with pytest.raises(FileNotFoundError, match="no complete pool index"):
        PoolIndex.open(tmp_path)
    report = index_pool(pool(0, POOL_SIZE), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    assert report.manifest.samples == POOL_SIZE
    assert report.new_samples + report.skipped_samples == POOL_SIZE
    assert PoolIndex.open(tmp_path).sample_ids() == [s.id for s in pool(0, POOL_SIZE)]


def test_a_run_killed_while_embedding_embeds_only_what_is_missing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    real_add = chroma_index.ChromaIndex.add
    calls = []

    def add_then_die(self: chroma_index.ChromaIndex, *args: object) -> None:
        if len(calls) == 2:
            raise Killed
        calls.append(len(args[0]))  # type: ignore[arg-type]
        real_add(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(chroma_index.ChromaIndex, "add", add_then_die)
    with pytest.raises(Killed):
        index_pool(pool(0, POOL_SIZE), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, batch_size=16,
                   progress=False)
    monkeypatch.setattr(chroma_index.ChromaIndex, "add", real_add)
    report = index_pool(pool(0, POOL_SIZE), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, batch_size=16,
                        progress=False)
    assert calls == [16, 16]
    assert report.skipped_samples == POOL_SIZE
    assert report.embedded_groups == report.manifest.groups - 32
    index = PoolIndex.open(tmp_path)
    assert len(index.query("counting", 5, "dense")) == 5


def test_a_real_sigkill_mid_indexing_resumes(tmp_path: Path) -> None:
    """Kill an indexing process with SIGKILL once it has embedded something, then finish in-process."""
    script = (
        "import sys; from pathlib import Path\n"
        "from gaptune.data.world.world import pool\n"
        "from gaptune.data.world.families import SKILL_DESCRIPTIONS\n"
        "from gaptune.tools.pool_index import index_pool\n"
        f"index_pool(pool(0, {KILLED_POOL_SIZE}), Path(sys.argv[1]), skill_descriptions=SKILL_DESCRIPTIONS,"
        " batch_size=8, progress=False)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stderr=subprocess.DEVNULL)
    chroma_dir = tmp_path / "chroma"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if _groups_in_chroma(tmp_path) >= 8:
            break
        time.sleep(0.2)
    if child.poll() is not None:
        pytest.skip("the indexing child finished before it could be killed")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert chroma_dir.exists() and not (tmp_path / MANIFEST).exists()
    report = index_pool(pool(0, KILLED_POOL_SIZE), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    assert report.manifest.samples == KILLED_POOL_SIZE
    assert 0 < report.embedded_groups < report.manifest.groups
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["groups"] == PoolIndex.open(tmp_path).manifest.groups


def _groups_in_chroma(index_dir: Path) -> int:
    """Embedded groups, read from the index's own SQLite so the child's Chroma store is not opened twice."""
    import sqlite3

    database = index_dir / "chroma" / "chroma.sqlite3"
    if not database.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.1) as db:
            return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
    except sqlite3.Error:
        return 0
