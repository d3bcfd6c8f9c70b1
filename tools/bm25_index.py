"""The lexical half of the pool index: BM25 (bm25s) over the pool's group documents.

The paper retrieved pool data with BM25; it also needs no model. Tokens are
lower-cased words with English stop words dropped and a light suffix strip,
so "count", "counts" and "counting" meet (bm25s ships no stemmer of its own).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "can", "cannot", "t", "for", "from", "has", "have", "how", "in",
     "is", "it", "its", "not", "of", "on", "or", "the", "than", "that", "this", "to", "was", "were", "what", "which", "with"]
)
_SUFFIXES = ("ing", "es", "ed", "s")
GROUP_IDS_FILE = "group_ids.json"


def stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def tokenize(text: str) -> list[str]:
    return [stem(word) for word in _WORD.findall(text.lower()) if word not in _STOP]


class BM25Index:
    """BM25 over documents keyed by id; scores every document, since the pool's groups number thousands, not millions."""

    def __init__(self, retriever: bm25s.BM25, ids: list[str]) -> None:
        self._retriever = retriever
        self.ids = ids

    @classmethod
    def build(cls, ids: Sequence[str], documents: Sequence[str]) -> BM25Index:
        retriever = bm25s.BM25()
        retriever.index([tokenize(doc) for doc in documents], show_progress=False)
        return cls(retriever, list(ids))

    def save(self, directory: Path) -> None:
        """Write to a sibling temp dir, then swap it in: a reader never sees half an index."""
        staging = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        self._retriever.save(str(staging))
        (staging / GROUP_IDS_FILE).write_text(json.dumps(self.ids))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(staging, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        ids_file = directory / GROUP_IDS_FILE
        if not ids_file.is_file():
            raise FileNotFoundError(f"no BM25 index at {directory} (missing {GROUP_IDS_FILE}); re-run pool indexing")
        return cls(bm25s.BM25.load(str(directory)), json.loads(ids_file.read_text()))

    def ranked(self, query: str) -> list[tuple[str, float]]:
        """Every document that shares a token with `query`, as (id, score), best first; ties keep index order."""
        tokens = tokenize(query)
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        return [(self.ids[i], float(scores[i])) for i in order if scores[i] > 0]
