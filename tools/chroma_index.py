"""The dense half of the pool index: a Chroma collection of embedded pool documents.

Embedded (a `PersistentClient` on a directory) by default, or a `chroma run`
server given by URL. Embeddings are always computed here, never by Chroma, so
the model is the packaged offline one and each distinct text is embedded once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

COLLECTION = "gaptune_pool"
UPSERT_BATCH = 4000
_GET_CHUNK = 5000  # Chroma bounds ids per request; 5,000 stays under every version's limit


class ChromaConfig(BaseModel):
    """Where the collection lives: `path` (embedded) or `url` (a `chroma run` server); neither means `<index dir>/chroma`."""

    model_config = ConfigDict(extra="forbid")

    path: Path | None = None
    url: str | None = None
    collection: str = COLLECTION

    @model_validator(mode="after")
    def _one_location(self) -> ChromaConfig:
        if self.path is not None and self.url is not None:
            raise ValueError("chroma: give either `path` (embedded) or `url` (server), not both")
        return self


class ChromaIndex:
    """One collection of pool groups: id = group id, metadata (task, source, skills), embedding; the documents
    themselves live in the index's samples.sqlite."""

    def __init__(self, config: ChromaConfig, default_path: Path) -> None:
        self.config = config
        self.location = config.url or str(config.path or default_path)
        client = _connect(config, default_path)
        # Few large upserts beat many small ones (582 -> 902 vectors/s from 256 to 4,000 per request, measured);
        # the server's own limit caps it.
        self.max_batch = max(1, min(int(client.get_max_batch_size()), UPSERT_BATCH))
        self._collection = client.get_or_create_collection(
            config.collection, embedding_function=None, metadata={"hnsw:space": "cosine"},
        )
        self._count: int | None = None  # Chroma counts in ~110 ms at 1M vectors: once, then after each add

    def count(self) -> int:
        if self._count is None:
            self._count = int(self._collection.count())
        return self._count

    def missing(self, ids: Sequence[str]) -> list[str]:
        """Those of `ids` not yet in the collection, in the given order (what a resumed indexing still owes)."""
        present: set[str] = set()
        for start in range(0, len(ids), _GET_CHUNK):
            found = self._collection.get(ids=list(ids[start:start + _GET_CHUNK]), include=[])
            present.update(found["ids"])
        return [item for item in ids if item not in present]

    def add(self, ids: Sequence[str], metadatas: Sequence[dict[str, Any]], embeddings: np.ndarray) -> None:
        """Upsert vectors with their metadata, in requests of at most `max_batch`. Documents stay in the index's
        SQLite: Chroma storing them too (and indexing their text) made bulk upserts 1.5x slower, measured."""
        for start in range(0, len(ids), self.max_batch):
            end = start + self.max_batch
            self._collection.upsert(ids=list(ids[start:end]), metadatas=list(metadatas[start:end]),
                                    embeddings=embeddings[start:end])
        self._count = None

    def nearest(self, embedding: np.ndarray, n: int, where: Mapping[str, Any] | None = None) -> list[tuple[str, float]]:
        """The `n` nearest groups as (group id, cosine similarity), best first; `where`: a Chroma metadata filter,
        applied inside Chroma's search (so `n` matching groups come back when there are that many)."""
        n = min(n, self.count())
        if n <= 0:
            return []
        result = self._collection.query(query_embeddings=embedding[None, :], n_results=n, include=["distances"],
                                        where=dict(where) if where else None)
        return [(gid, 1.0 - float(dist)) for gid, dist in zip(result["ids"][0], result["distances"][0], strict=True)]


def _connect(config: ChromaConfig, default_path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if config.url is None:
        path = config.path or default_path
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings)
    parsed = urlparse(config.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"chroma.url {config.url!r} is not an http(s) URL such as http://localhost:8000")
    port = parsed.port or (443 if parsed.scheme == "https" else 8000)
    try:
        client = chromadb.HttpClient(host=parsed.hostname, port=port, ssl=parsed.scheme == "https", settings=settings)
        client.heartbeat()
    except Exception as error:
        raise ConnectionError(
            f"no Chroma server answers at chroma.url={config.url!r} ({type(error).__name__}: {error}). "
            f"Start one with `chroma run --path <dir> --port {port}`, or drop chroma.url to use the embedded store."
        ) from error
    return client
