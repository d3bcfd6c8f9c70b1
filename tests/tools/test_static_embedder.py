"""The model2vec static embedder: distilled offline from the bundled MiniLM once, cached, and an index built with it.

Distillation is one MiniLM pass over its 30,522-token vocabulary (about a minute on 2 cores), so it is
done once per session cache (GAPTUNE_TEST_CACHE keeps it across sessions).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools import embedder as embedders
from gaptune.tools.embedder import STATIC_PREFIX, StaticEmbedder, load_embedder, static_model_dir
from gaptune.tools.pool_index import PoolIndex, index_pool

pytestmark = pytest.mark.slow
STATIC = STATIC_PREFIX + "all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def static(cache_dir: Path) -> StaticEmbedder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GAPTUNE_CACHE", str(cache_dir))
        model = load_embedder(STATIC)
    assert isinstance(model, StaticEmbedder)
    return model


def test_static_vectors_are_unit_length_and_keep_meaning(static: StaticEmbedder) -> None:
    texts = ["how many red squares are there?", "count the red objects in the picture",
             "which object is the biggest one?"]
    vectors = static.encode(texts)
    assert vectors.shape == (3, static.dimension) == (3, 256) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2], "counting is nearer counting than size"
    assert static.encode([]).shape == (0, 256)


def test_a_distilled_model_is_reused_and_a_saved_one_loads_by_path(
        static: StaticEmbedder, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAPTUNE_CACHE", str(cache_dir))
    monkeypatch.setattr(embedders, "_distill", lambda base, target: pytest.fail("distilled twice"))
    assert static_model_dir("all-MiniLM-L6-v2") == static.path
    assert static.path.is_relative_to(cache_dir / "embedders")
    by_path = StaticEmbedder(STATIC_PREFIX + str(static.path))
    assert by_path.path == static.path
    assert np.array_equal(by_path.encode(["count the red objects"]), static.encode(["count the red objects"]))


def test_an_index_built_with_the_static_embedder_records_it_and_retrieves_by_skill(
        static: StaticEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = index_pool(pool(0, 300), tmp_path, embedding_model=STATIC, skill_descriptions=SKILL_DESCRIPTIONS,
                        progress=False)
    assert report.manifest.embedding_model == STATIC and report.embedded_groups == report.manifest.groups
    index = PoolIndex.open(tmp_path)
    skills = index.skills_by_id()
    hits = index.query("counting: counting the objects of a colour or shape", 10, "dense")
    assert len(hits) == 10 and all("counting" in skills[hit.sample_id] for hit in hits)
    with pytest.raises(ValueError, match="indexed with embedding_model='model2vec:all-MiniLM-L6-v2'"):
        index_pool(pool(0, 300), tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
