"""The lexical half of the pool index: BM25 (bm25s) over the pool's group documents.

The paper retrieved pool data with BM25; it also needs no model. Tokens are
bm25s's own: lower-cased words of two or more characters, bm25s's English
stop words dropped, Snowball-stemmed (PyStemmer), so "count", "counts" and
"counting" meet. The tokenizer is recorded beside the index: an index built
with another one is refused on load (`StaleIndexError`), and pool indexing
rebuilds it (the embeddings are kept).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import bm25s
import numpy as np
import Stemmer

from gaptune.data.atomic import publish_directory

GROUP_IDS_FILE = "group_ids.json"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER = {"tokenizer": "bm25s", "stopwords": "en", "stemmer": "snowball-english"}
"""What tokenized an index; a change here must invalidate indexes on disk, and does (see `BM25Index.load`)."""

_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    """PyStemmer's stemmers are not thread-safe and retrieval queries run in parallel: one per thread."""
    if not hasattr(_local, "stemmer"):
        _local.stemmer = Stemmer.Stemmer("english")
    return _local.stemmer


def tokenize_all(texts: Sequence[str]) -> list[list[str]]:
    """bm25s's tokenization of each text (see the module docstring)."""
    tokens = bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)
    return cast(list[list[str]], tokens)


def tokenize(text: str) -> list[str]:
    return tokenize_all([text])[0]


class StaleIndexError(FileNotFoundError):
    """A BM25 index written by another tokenizer: as good as missing, so pool indexing rebuilds it."""


class BM25Index:
    """BM25 over documents keyed by id; scores every document, since the pool's groups number thousands, not millions."""

    def __init__(self, retriever: bm25s.BM25, ids: list[str]) -> None:
        self._retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, ids: Sequence[str], documents: Sequence[str]) -> BM25Index:
        retriever = bm25s.BM25()
        retriever.index(tokenize_all(documents), show_progress=False)
        return cls(retriever, list(ids))

    def save(self, directory: Path) -> None:
        """Written whole into a staging directory that then replaces `directory` (data/atomic)."""
        with publish_directory(directory) as staging:
            self._retriever.save(str(staging))
            (staging / GROUP_IDS_FILE).write_text(json.dumps(self.ids))
            (staging / TOKENIZER_FILE).write_text(json.dumps(TOKENIZER))

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        ids_file = directory / GROUP_IDS_FILE
        if not ids_file.is_file():
            raise FileNotFoundError(f"no BM25 index at {directory} (missing {GROUP_IDS_FILE}); re-run pool indexing")
        tokenizer_file = directory / TOKENIZER_FILE
        recorded = json.loads(tokenizer_file.read_text()) if tokenizer_file.is_file() else None
        if recorded != TOKENIZER:
            raise StaleIndexError(f"the BM25 index at {directory} was built with another tokenizer "
                                  f"({recorded or 'an older, hand-written one'}); re-run pool indexing to rebuild it")
        return cls(bm25s.BM25.load(str(directory)), json.loads(ids_file.read_text()))

    def ranked(self, query: str, depth: int | None = None) -> list[tuple[str, float]]:
        """Every document that shares a token with `query` (or the best `depth`), as (id, score), best first;
        ties keep index order."""
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
        candidates = np.flatnonzero(scores > 0)
        if depth is not None and len(candidates) > depth:
            # the best `depth` scores, with every document tied at the cut (a stable sort then keeps index order)
            cut = np.partition(scores[candidates], len(candidates) - depth)[len(candidates) - depth]
            candidates = candidates[scores[candidates] >= cut]
        order = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [(self.ids[i], float(scores[i])) for i in order[:depth]]
