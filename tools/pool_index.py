"""Index a pool of `Sample`s once, then query it per gap: BM25, dense (Chroma), or both fused.

Layout of an index directory:

    samples.sqlite   sample id -> group, task, source, skills; group -> document
    chroma/          the embedded Chroma store (unless chroma.url names a server)
    bm25/            the bm25s index over group documents
    manifest.json    written last: pool fingerprint, counts, model; its presence
                     means the index is complete

Indexing is idempotent and resumable: samples and groups already recorded are
skipped, groups already in Chroma are not embedded again, and every write is
either a committed SQLite transaction, a Chroma upsert, or a temp-then-rename.
A killed run leaves no new manifest; running it again finishes the job.

Queries rank *groups* (distinct documents, see `pool_documents`) and expand
them to their samples in pool order, skipping excluded ids, fetching deeper
until `k` samples are found or the ranking runs out.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from gaptune.data.atomic import write_text_atomic
from gaptune.data.engine import Engine, LocalEngine, Row
from gaptune.data.sample import Sample
from gaptune.tools.bm25_index import BM25Index
from gaptune.tools.chroma_index import UPSERT_BATCH, ChromaConfig, ChromaIndex
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL, load_embedder
from gaptune.tools.pool_documents import document_text, group_id

Method = Literal["bm25", "dense", "fused"]
METHODS: tuple[str, ...] = ("bm25", "dense", "fused")
# A metadata filter: field -> the values a sample may have (`retrieval.where`); the fields every index records.
Where = Mapping[str, Sequence[str]]
FILTER_FIELDS: tuple[str, ...] = ("task", "source")


def check_where(where: Where) -> None:
    """A filter names only recorded fields, each with at least one value."""
    for field, values in where.items():
        if field not in FILTER_FIELDS:
            raise ValueError(f"retrieval.where: unknown field {field!r}; filterable fields: {', '.join(FILTER_FIELDS)}")
        if not values:
            raise ValueError(f"retrieval.where.{field}: name at least one value")


def chroma_where(where: Where) -> dict[str, Any] | None:
    """The filter in Chroma's syntax: each field's values with $in, the fields joined with $and."""
    clauses = [{field: {"$in": list(values)}} for field, values in sorted(where.items())]
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}


MANIFEST = "manifest.json"
DATABASE = "samples.sqlite"
BM25_DIR = "bm25"
CHROMA_DIR = "chroma"
FORMAT_VERSION = 1
DEFAULT_RRF_K = 60  # the constant of Cormack et al. (2009), the usual RRF default
# Dense rankings are at least this many groups deep, so the top of a fused
# ranking does not change with k (RRF over truncated lists depends on the cut).
MIN_DENSE_DEPTH = 1000
_INGEST_CHUNK = 2000
# Documents per embedding call (and per engine batch): the batches, and so the vectors, whatever the engine.
EMBED_BATCH = 256


class Hit(BaseModel):
    """One retrieved pool sample: `rank` is 1-based within the returned list, `score` is the method's own."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    score: float
    rank: int = Field(ge=1)
    method: str


class IndexManifest(BaseModel):
    """What an index directory holds; written last, so its presence means the index is complete."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    fingerprint: str
    samples: int
    groups: int
    embedding_model: str
    skill_descriptions: dict[str, str]
    skills: dict[str, int]
    chroma_location: str
    collection: str


class IndexReport(BaseModel):
    """What one `index_pool` call did, for logs and the benchmark."""

    model_config = ConfigDict(extra="forbid")

    manifest: IndexManifest
    new_samples: int
    skipped_samples: int
    embedded_groups: int


def index_pool(
    samples: Iterable[Sample],
    index_dir: Path,
    *,
    chroma: ChromaConfig | None = None,
    embedding_model: str = DEFAULT_EMBEDDING_MODEL,
    skill_descriptions: Mapping[str, str] | None = None,
    batch_size: int = UPSERT_BATCH,
    progress: bool = True,
    engine: Engine | None = None,
) -> IndexReport:
    """Index `samples` into `index_dir` (created if needed); safe to re-run and to resume after a kill.

    `engine` embeds the documents (default: in this process); only this process writes the index."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    chroma = chroma or ChromaConfig()
    descriptions = dict(skill_descriptions or {})
    old = _read_manifest(index_dir)
    with closing(_open_db(index_dir)) as db:
        _check_settings(db, index_dir, embedding_model, chroma.collection)
        fingerprint, seen, new, skipped = _ingest(db, samples, descriptions, progress)
        stored = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        if stored != seen:
            raise ValueError(
                f"{index_dir / DATABASE} holds {stored} samples but this pool has {seen}: the directory was "
                "indexed for another pool; choose another index dir or delete this one"
            )
        if old is not None and old.fingerprint != fingerprint:
            raise ValueError(f"{index_dir} was indexed for another pool (fingerprint {old.fingerprint[:12]}); "
                             "choose another index dir or delete this one")
        groups = db.execute("SELECT gid, document, task, source, skills FROM groups ORDER BY pos").fetchall()
        dense = ChromaIndex(chroma, index_dir / CHROMA_DIR)
        embedded = _embed_missing(dense, groups, embedding_model, batch_size, progress, engine or LocalEngine())
        BM25Index.build([g[0] for g in groups], [g[1] for g in groups]).save(index_dir / BM25_DIR)
        skill_counts: dict[str, int] = {}
        for (skills,) in db.execute("SELECT skills FROM samples"):
            for skill in json.loads(skills):
                skill_counts[skill] = skill_counts.get(skill, 0) + 1
    manifest = IndexManifest(
        fingerprint=fingerprint, samples=seen, groups=len(groups), embedding_model=embedding_model,
        skill_descriptions=descriptions, skills=dict(sorted(skill_counts.items())),
        chroma_location=dense.location, collection=chroma.collection,
    )
    write_text_atomic(index_dir / MANIFEST, manifest.model_dump_json(indent=2))
    return IndexReport(manifest=manifest, new_samples=new, skipped_samples=skipped, embedded_groups=embedded)


def _open_db(index_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(index_dir / DATABASE, check_same_thread=False)
    db.executescript(
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS groups (pos INTEGER PRIMARY KEY AUTOINCREMENT, gid TEXT UNIQUE NOT NULL,
            document TEXT NOT NULL, task TEXT NOT NULL, source TEXT NOT NULL, skills TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS samples (pos INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,
            gid TEXT NOT NULL, task TEXT NOT NULL, source TEXT NOT NULL, skills TEXT NOT NULL);
        """
    )
    return db


def _check_settings(db: sqlite3.Connection, index_dir: Path, embedding_model: str, collection: str) -> None:
    """A resumed run must embed with the model the finished part used, or dense scores would mix spaces."""
    with db:
        for key, value in (("embedding_model", embedding_model), ("collection", collection)):
            db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            stored = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
            if stored != value:
                raise ValueError(f"{index_dir} was indexed with {key}={stored!r}, not {value!r}; "
                                 "use the same setting or another index dir")


def _ingest(db: sqlite3.Connection, samples: Iterable[Sample], descriptions: Mapping[str, str],
            progress: bool) -> tuple[str, int, int, int]:
    """Record samples and groups, one transaction per chunk; returns (fingerprint, pool size, new, skipped)."""
    digest = hashlib.sha256()
    seen = new = skipped = 0
    iterator: Iterator[Sample] = iter(tqdm(samples, desc="pool: record", unit="sample", disable=None if progress else True))
    while chunk := list(islice(iterator, _INGEST_CHUNK)):
        rows = []
        for sample in chunk:
            document = document_text(sample, descriptions)
            rows.append((sample, document, group_id(document, sample)))
            digest.update(f"{sample.id}\t{rows[-1][2]}\n".encode())
        placeholders = ",".join("?" * len(rows))
        stored = dict(db.execute(f"SELECT id, gid FROM samples WHERE id IN ({placeholders})",
                                 [s.id for s, _, _ in rows]).fetchall())
        with db:
            for sample, document, gid in rows:
                seen += 1
                if sample.id in stored:
                    if stored[sample.id] != gid:
                        raise ValueError(f"pool sample {sample.id!r} changed since it was indexed (or its id "
                                         "appears twice with different content); ids must be unique and stable")
                    skipped += 1
                    continue
                skills = json.dumps(sorted(sample.skills))
                db.execute("INSERT OR IGNORE INTO groups (gid, document, task, source, skills) VALUES (?,?,?,?,?)",
                           (gid, document, sample.task, sample.source, skills))
                db.execute("INSERT INTO samples (id, gid, task, source, skills) VALUES (?,?,?,?,?)",
                           (sample.id, gid, sample.task, sample.source, skills))
                stored[sample.id] = gid
                new += 1
    return digest.hexdigest(), seen, new, skipped


class EmbedWorker:
    """Documents to vectors (the engine's worker): rows {gid, text} -> {gid, vector}."""

    def __init__(self, model: str) -> None:
        self.embedder = load_embedder(model)

    def __call__(self, rows: list[Row]) -> list[Row]:
        vectors = self.embedder.encode([row["text"] for row in rows])
        return [{"gid": row["gid"], "vector": vector} for row, vector in zip(rows, vectors, strict=True)]


def _embed_missing(dense: ChromaIndex, groups: list[tuple[str, str, str, str, str]], model: str,
                   batch_size: int, progress: bool, engine: Engine) -> int:
    """Embed the groups Chroma lacks on the engine and store them here, `batch_size` (at most Chroma's limit) per
    upsert: a kill loses at most one upsert's embeddings."""
    by_id = {g[0]: g for g in groups}
    missing = dense.missing([g[0] for g in groups])
    if not missing:
        return 0
    bar = tqdm(total=len(missing), desc="pool: embed", unit="text", disable=None if progress else True)
    chunk = min(batch_size, dense.max_batch)
    rows = ({"gid": gid, "text": by_id[gid][1]} for gid in missing)
    vectors = engine.map(EmbedWorker, {"model": model}, rows, batch_size=EMBED_BATCH)
    while embedded := list(islice(vectors, chunk)):
        batch = [by_id[row["gid"]] for row in embedded]
        metadatas = [{"task": g[2], "source": g[3], "skills": ", ".join(json.loads(g[4]))} for g in batch]
        dense.add([g[0] for g in batch], metadatas, np.stack([row["vector"] for row in embedded]))
        bar.update(len(batch))
    bar.close()
    return len(missing)


def _recorded_chroma(manifest: IndexManifest) -> ChromaConfig:
    """Where indexing put the collection: its server, or its directory if it still exists, else `<index dir>/chroma`."""
    location = manifest.chroma_location
    if location.startswith(("http://", "https://")):
        return ChromaConfig(url=location, collection=manifest.collection)
    path = Path(location)
    return ChromaConfig(path=path if path.is_dir() else None, collection=manifest.collection)


def _read_manifest(index_dir: Path) -> IndexManifest | None:
    path = index_dir / MANIFEST
    if not path.is_file():
        return None
    return IndexManifest.model_validate_json(path.read_text())


class PoolIndex:
    """A complete pool index opened for queries; thread-safe for concurrent `query` calls."""

    def __init__(self, index_dir: Path, manifest: IndexManifest, dense: ChromaIndex, lexical: BM25Index,
                 members: dict[str, list[str]], skills: dict[str, list[str]]) -> None:
        self.index_dir = index_dir
        self.manifest = manifest
        self._dense = dense
        self._lexical = lexical
        self._members = members
        self._skills = skills
        self._group = {sample_id: gid for gid, ids in members.items() for sample_id in ids}
        self._allowed: dict[str, frozenset[str]] = {}  # a filter's groups, read from the index's database once

    @classmethod
    def open(cls, index_dir: Path, *, chroma: ChromaConfig | None = None) -> PoolIndex:
        index_dir = Path(index_dir)
        manifest = _read_manifest(index_dir)
        if manifest is None:
            raise FileNotFoundError(f"no complete pool index at {index_dir} (no {MANIFEST}); run pool indexing "
                                    "(`gaptune pool index`), which also resumes an interrupted one")
        chroma = chroma or _recorded_chroma(manifest)
        members: dict[str, list[str]] = {}
        skills: dict[str, list[str]] = {}
        db = sqlite3.connect(index_dir / DATABASE)
        try:
            for sample_id, gid, sample_skills in db.execute("SELECT id, gid, skills FROM samples ORDER BY pos"):
                members.setdefault(gid, []).append(sample_id)
                skills[sample_id] = json.loads(sample_skills)
        finally:
            db.close()
        dense = ChromaIndex(chroma, index_dir / CHROMA_DIR)
        if dense.count() != manifest.groups:
            raise ValueError(f"Chroma collection {chroma.collection!r} at {dense.location} holds {dense.count()} "
                             f"groups, the manifest at {index_dir} expects {manifest.groups}; re-run pool indexing")
        return cls(index_dir, manifest, dense, BM25Index.load(index_dir / BM25_DIR), members, skills)

    def sample_ids(self) -> list[str]:
        return list(self._skills)

    def skills_by_id(self) -> dict[str, list[str]]:
        return dict(self._skills)

    def group_of(self, sample_id: str) -> str:
        """The group (distinct document) a sample belongs to; its samples share every score."""
        return self._group[sample_id]

    def skill_vocabulary(self) -> dict[str, str]:
        """Every skill the pool teaches -> its description ("" when indexing was given none)."""
        return {skill: self.manifest.skill_descriptions.get(skill, "") for skill in self.manifest.skills}

    def query(self, text: str, k: int, method: Method = "fused", exclude: Iterable[str] = (), *,
              rrf_k: int = DEFAULT_RRF_K, oversample: float = 2.0, where: Where | None = None) -> list[Hit]:
        """The best `k` samples for `text` outside `exclude` and inside `where` (fewer only when the ranking runs
        out). The filter runs inside Chroma's search for the dense ranking and on BM25's matches."""
        if method not in METHODS:
            raise ValueError(f"unknown retrieval method {method!r}; expected one of {', '.join(METHODS)}")
        if k <= 0:
            return []
        excluded = frozenset(exclude)
        total = len(self.allowed_groups(where)) if where else self.manifest.groups
        depth = min(total, max(int(k * oversample), k, MIN_DENSE_DEPTH))
        lexical = self._lexical.ranked(text) if method == "bm25" else None
        if lexical is not None and where:
            lexical = self._within(lexical, where)
        while True:
            ranked = self.ranked_groups(text, method, depth, lexical=lexical, rrf_k=rrf_k, where=where)
            hits = self._expand(ranked, k, excluded, method)
            if len(hits) == k or method == "bm25" or depth >= total:
                return hits
            depth = min(total, depth * 4)

    def ranked_groups(self, text: str, method: Method, depth: int, *, lexical: list[tuple[str, float]] | None = None,
                      rrf_k: int = DEFAULT_RRF_K, where: Where | None = None) -> list[tuple[str, float]]:
        """Groups as (group id, score), best first: every BM25 match, the `depth` nearest, or their RRF.

        Fused score = sum over the two rankings, each `depth` deep, of 1 / (rrf_k + rank); a group
        missing from one ranking gets nothing from it. (RRF over the whole BM25 list cost 0.9 s a query
        on 100,000 distinct documents; ranks past `depth` add under 1 / (rrf_k + depth) each.)
        """
        if lexical is None:
            # filtered, BM25 ranks every match: the best `depth` of them may all lie outside the filter
            lexical = [] if method == "dense" else self._lexical.ranked(
                text, None if method == "bm25" or where else depth)
            if where:
                lexical = self._within(lexical, where)[:None if method == "bm25" else depth]
        if method == "bm25":
            return lexical
        dense = self._dense.nearest(load_embedder(self.manifest.embedding_model).encode([text])[0], depth,
                                    where=chroma_where(where) if where else None)
        if method == "dense":
            return dense
        fused: dict[str, float] = {}
        for ranking in (lexical, dense):
            for rank, (gid, _) in enumerate(ranking, start=1):
                fused[gid] = fused.get(gid, 0.0) + 1.0 / (rrf_k + rank)
        return sorted(fused.items(), key=lambda item: -item[1])

    def allowed_groups(self, where: Where) -> frozenset[str]:
        """The groups whose samples match `where` (each field one of its values)."""
        check_where(where)
        key = json.dumps({field: sorted(values) for field, values in sorted(where.items())})
        if key not in self._allowed:
            clauses = " AND ".join(f"{field} IN ({','.join('?' * len(values))})" for field, values in sorted(where.items()))
            parameters = [value for _, values in sorted(where.items()) for value in values]
            with closing(sqlite3.connect(self.index_dir / DATABASE)) as db:
                self._allowed[key] = frozenset(gid for (gid,) in db.execute(
                    f"SELECT gid FROM groups WHERE {clauses}", parameters))  # fields: checked names only
        return self._allowed[key]

    def _within(self, ranking: list[tuple[str, float]], where: Where) -> list[tuple[str, float]]:
        allowed = self.allowed_groups(where)
        return [(gid, score) for gid, score in ranking if gid in allowed]

    def _expand(self, ranked: list[tuple[str, float]], k: int, excluded: frozenset[str], method: str) -> list[Hit]:
        hits: list[Hit] = []
        for gid, score in ranked:
            for sample_id in self._members.get(gid, ()):
                if sample_id in excluded:
                    continue
                hits.append(Hit(sample_id=sample_id, score=score, rank=len(hits) + 1, method=method))
                if len(hits) == k:
                    return hits
        return hits
