"""The MiniLM under ONNX Runtime: exported offline once, cached, the transformer path's vectors in fp32, close
to them in int8, and an index built with it that records it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools import embedder as embedders
from gaptune.tools.embedder import ONNX_INT8_PREFIX, ONNX_PREFIX, OnnxEmbedder, load_embedder, onnx_model_dir
from gaptune.tools.pool_index import PoolIndex, index_pool

pytest.importorskip("onnxruntime", reason="the ONNX embedder is the optional extra gaptune[onnx]")
pytestmark = pytest.mark.slow  # an ONNX export of MiniLM (about 10 s)
ONNX, INT8 = ONNX_PREFIX + "all-MiniLM-L6-v2", ONNX_INT8_PREFIX + "all-MiniLM-L6-v2"
TEXTS = ["how many red squares are there?", "count the red objects in the picture", "which object is the biggest one?",
         "is the small circle to the left of the big square, and what colour is the square above it?"]


@pytest.fixture(scope="module")
def exported(cache_dir: Path) -> tuple[OnnxEmbedder, OnnxEmbedder]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAPTUNE_CACHE", str(cache_dir))
        fp32, int8 = load_embedder(ONNX), load_embedder(INT8)
    assert isinstance(fp32, OnnxEmbedder) and isinstance(int8, OnnxEmbedder)
    return fp32, int8


def test_fp32_equals_the_transformer_path_and_int8_stays_close(exported: tuple[OnnxEmbedder, OnnxEmbedder]) -> None:
    fp32, int8 = exported
    reference = load_embedder("all-MiniLM-L6-v2").encode(TEXTS)
    vectors = fp32.encode(TEXTS, batch_size=3)  # batches of mixed lengths, padded per batch
    assert vectors.shape == (4, 384) == (4, fp32.dimension) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    quantised = int8.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    assert (quantised * reference).sum(axis=1).min() > 0.9
    assert quantised[0] @ quantised[1] > quantised[0] @ quantised[2], "counting is nearer counting than size"
    assert fp32.encode([]).shape == (0, 384)


def test_the_export_is_reused(exported: tuple[OnnxEmbedder, OnnxEmbedder], cache_dir: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAPTUNE_CACHE", str(cache_dir))
    monkeypatch.setattr(embedders, "_export_onnx", lambda base, target: pytest.fail("exported twice"))
    directory = onnx_model_dir("all-MiniLM-L6-v2")
    assert directory.is_relative_to(cache_dir / "embedders")
    assert {"model.onnx", "model-int8.onnx", "gaptune_onnx.json"} <= {p.name for p in directory.iterdir()}


def test_an_index_built_with_onnx_records_it_and_retrieves_by_skill(
        exported: tuple[OnnxEmbedder, OnnxEmbedder], tmp_path: Path) -> None:
    report = index_pool(pool(0, 200), tmp_path, embedding_model=INT8, skill_descriptions=SKILL_DESCRIPTIONS,
                        progress=False)
    assert report.manifest.embedding_model == INT8
    index = PoolIndex.open(tmp_path)
    skills = index.skills_by_id()
    hits = index.query("counting: counting the objects of a colour or shape", 10, "dense")
    counting = sum("counting" in s.skills for s in pool(0, 200))
    assert sum("counting" in skills[h.sample_id] for h in hits) == counting == 7, "every counting sample, first"
    with pytest.raises(ValueError, match="indexed with embedding_model='onnx-int8:all-MiniLM-L6-v2'"):
        index_pool(pool(0, 200), tmp_path, embedding_model=ONNX, skill_descriptions=SKILL_DESCRIPTIONS,
                   progress=False)
