"""The pool index, the query tool and the retriever agent on a real Chroma store and a real BM25 index.

One index over 300 world pool samples is built per session (a few seconds of
MiniLM on CPU) and shared; tests that mutate build their own elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gaptune.agents.retriever import RetrievalConfig, retrieve
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools.bm25_index import TOKENIZER_FILE, BM25Index, tokenize
from gaptune.tools.chroma_index import ChromaConfig, ChromaIndex
from gaptune.tools.pool_index import BM25_DIR, PoolIndex, index_pool

POOL_SIZE = 300
COUNTING = "counting: counting the objects of a colour or shape"


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> PoolIndex:
    directory = tmp_path_factory.mktemp("pool_index")
    report = index_pool(pool(0, POOL_SIZE), directory, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    assert report.new_samples == POOL_SIZE and report.embedded_groups == report.manifest.groups
    return PoolIndex.open(directory)


def test_manifest_counts_and_vocabulary(index: PoolIndex) -> None:
    samples = list(pool(0, POOL_SIZE))
    assert index.manifest.samples == POOL_SIZE
    assert index.manifest.groups == len({index.group_of(s.id) for s in samples}) < POOL_SIZE
    assert index.manifest.skills["counting"] == sum("counting" in s.skills for s in samples)
    assert index.skill_vocabulary()["counting"] == SKILL_DESCRIPTIONS["counting"]
    assert index.skills_by_id()["pool-000000"] == samples[0].skills


def test_reindexing_skips_everything_present(index: PoolIndex) -> None:
    report = index_pool(pool(0, POOL_SIZE), index.index_dir, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    assert (report.new_samples, report.skipped_samples, report.embedded_groups) == (0, POOL_SIZE, 0)
    assert report.manifest.fingerprint == index.manifest.fingerprint


def test_another_pool_in_the_same_dir_is_refused(index: PoolIndex) -> None:
    with pytest.raises(ValueError, match="'pool-000000' changed since it was indexed"):
        index_pool(pool(1, POOL_SIZE), index.index_dir, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    with pytest.raises(ValueError, match=f"holds {POOL_SIZE} samples but this pool has 50.*another pool"):
        index_pool(pool(0, 50), index.index_dir, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)


@pytest.mark.parametrize("method", ["bm25", "dense", "fused"])
def test_counting_query_finds_counting_samples(index: PoolIndex, method: str) -> None:
    hits = index.query(COUNTING, 10, method)  # type: ignore[arg-type]
    skills = index.skills_by_id()
    assert [hit.rank for hit in hits] == list(range(1, 11))
    assert all(hit.method == method for hit in hits)
    assert all("counting" in skills[hit.sample_id] for hit in hits)
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


@pytest.mark.parametrize("method", ["bm25", "dense", "fused"])
def test_exclusion_returns_the_next_k(index: PoolIndex, method: str) -> None:
    deep = index.query(COUNTING, 12, method)  # type: ignore[arg-type]
    first = {hit.sample_id for hit in deep[:6]}
    rest = index.query(COUNTING, 6, method, exclude=first)  # type: ignore[arg-type]
    assert [hit.sample_id for hit in rest] == [hit.sample_id for hit in deep[6:]]
    assert [hit.rank for hit in rest] == list(range(1, 7))


def test_exclusion_of_most_of_the_pool_still_fills_k(index: PoolIndex) -> None:
    ids = index.sample_ids()
    keep = set(ids[-15:])
    hits = index.query(COUNTING, 10, "dense", exclude=set(ids) - keep)
    assert len(hits) == 10 and {hit.sample_id for hit in hits} <= keep


def test_bm25_returns_only_matching_samples(index: PoolIndex) -> None:
    assert index.query("zebra quantum", 5, "bm25") == []
    assert len(index.query("zebra quantum", 5, "dense")) == 5


def test_fused_scores_are_reciprocal_rank_fusion_of_both_rankings(index: PoolIndex) -> None:
    depth = index.manifest.groups
    lexical = [gid for gid, _ in index.ranked_groups(COUNTING, "bm25", depth)]
    dense = [gid for gid, _ in index.ranked_groups(COUNTING, "dense", depth)]
    hits = index.query(COUNTING, 8, "fused", rrf_k=60)
    for hit in hits:
        group = index.group_of(hit.sample_id)
        expected = sum(1 / (60 + ranking.index(group) + 1) for ranking in (lexical, dense) if group in ranking)
        assert hit.score == pytest.approx(expected)
    assert hits[0].score == max(
        sum(1 / (60 + r.index(g) + 1) for r in (lexical, dense) if g in r) for g in dense
    )


def test_unknown_method_is_named(index: PoolIndex) -> None:
    with pytest.raises(ValueError, match="'sparse'.*bm25, dense, fused"):
        index.query(COUNTING, 3, "sparse")  # type: ignore[arg-type]


@pytest.mark.parametrize("method", ["bm25", "dense", "fused"])
def test_a_metadata_filter_keeps_every_hit_inside_it_and_still_fills_k(index: PoolIndex, method: str) -> None:
    samples = {s.id: s for s in pool(0, POOL_SIZE)}
    rare = ["count-colour", "count-shape"]  # 6 of the 300 samples
    inside = sorted(i for i, s in samples.items() if s.task in rare)
    # a query about something else: without the filter none of these tasks would rank near the top
    hits = index.query("which object is the biggest one", 10, method, where={"task": rare})  # type: ignore[arg-type]
    found = sorted(hit.sample_id for hit in hits)
    if method == "bm25":  # BM25 ranks only the documents sharing a word with the query
        assert found and set(found) <= set(inside)
    else:
        assert found == inside, "the whole filtered pool, as it holds fewer than k"
    unfiltered = [hit.sample_id for hit in index.query("which object is the biggest one", 10, method)]  # type: ignore[arg-type]
    assert not set(unfiltered) & set(inside)
    both = index.query(COUNTING, 4, method, where={"task": rare, "source": ["world:pool"]})  # type: ignore[arg-type]
    assert len(both) == 4 and all(samples[h.sample_id].task in rare for h in both)
    assert index.query(COUNTING, 4, method, where={"source": ["elsewhere"]}) == []  # type: ignore[arg-type]


def test_the_dense_filter_runs_inside_chroma(index: PoolIndex) -> None:
    from gaptune.tools.embedder import load_embedder
    from gaptune.tools.pool_index import chroma_where

    vector = load_embedder(index.manifest.embedding_model).encode(["which object is the biggest one"])[0]
    where = {"task": ["count-colour", "count-shape"]}
    nearest = index._dense.nearest(vector, 6, where=chroma_where(where))
    assert {gid for gid, _ in nearest} == index.allowed_groups(where) and len(nearest) == len(index.allowed_groups(where))
    assert chroma_where({"task": ["a"], "source": ["b"]}) == {"$and": [{"source": {"$in": ["b"]}},
                                                                        {"task": {"$in": ["a"]}}]}


def test_the_retriever_honours_retrieval_where_and_an_unknown_field_is_named(index: PoolIndex) -> None:
    config = RetrievalConfig(where={"task": ["count-colour", "count-shape", "more-shapes"]})
    selection = retrieve(index, {"counting": 2, "colour": 1}, 9, set(), config)
    tasks = {s.id: s.task for s in pool(0, POOL_SIZE)}
    assert selection.sample_ids and {tasks[i] for i in selection.sample_ids} <= set(config.where["task"])
    with pytest.raises(ValueError, match="unknown field 'skill'; filterable fields: task, source"):
        RetrievalConfig(where={"skill": ["counting"]})
    with pytest.raises(ValueError, match="where.task: name at least one value"):
        RetrievalConfig(where={"task": []})


def test_retriever_splits_dedupes_excludes_and_records_why(index: PoolIndex) -> None:
    used = {hit.sample_id for hit in index.query(COUNTING, 3, "fused")}
    profile = {"counting": 6, "comparison": 3, "colour": 1}
    selection = retrieve(index, profile, 10, used, RetrievalConfig())
    assert selection.allocation == {"counting": 6, "comparison": 3, "colour": 1}
    assert selection.shortfall == {}
    ids = selection.sample_ids
    assert len(ids) == len(set(ids)) == 10 and not set(ids) & used
    skills = index.skills_by_id()
    by_gap = {gap: [item for item in selection.items if item.gap == gap] for gap in profile}
    assert {gap: len(items) for gap, items in by_gap.items()} == selection.allocation
    for gap, items in by_gap.items():
        assert all(gap in skills[item.sample_id] for item in items)
        assert all(item.query.startswith(f"{gap}: ") and item.method == "fused" for item in items)
        direct = {hit.sample_id: hit for hit in index.query(items[0].query, 40, "fused", used)}
        for item in items:
            assert (item.score, item.rank) == (direct[item.sample_id].score, direct[item.sample_id].rank)


def test_a_sample_wanted_by_two_gaps_goes_to_one_and_the_other_tops_up(index: PoolIndex) -> None:
    # "counting objects" is no pool label, so it is queried as is and ranks the same counting samples.
    first = {hit.sample_id for hit in index.query(COUNTING, 5, "bm25")}
    second = {hit.sample_id for hit in index.query("counting objects", 5, "bm25")}
    assert first & second, "the two gaps must compete for samples for this test to mean anything"
    selection = retrieve(index, {"counting": 5, "counting objects": 5}, 10, (), RetrievalConfig(method="bm25"))
    ids = selection.sample_ids
    assert len(ids) == len(set(ids)) == 10
    assert sorted(item.gap for item in selection.items) == ["counting"] * 5 + ["counting objects"] * 5


def test_a_gap_the_pool_cannot_fill_reports_its_shortfall(index: PoolIndex) -> None:
    selection = retrieve(index, {"counting": 1, "zebra quantum": 1}, 4, (), RetrievalConfig(method="bm25"))
    assert selection.allocation == {"counting": 2, "zebra quantum": 2}
    assert selection.shortfall == {"zebra quantum": 2}
    assert [item.gap for item in selection.items] == ["counting", "counting"]


def test_open_without_manifest_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no complete pool index.*resumes"):
        PoolIndex.open(tmp_path)


def test_a_chroma_server_that_is_down_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match=r"http://127\.0\.0\.1:9.*chroma run"):
        ChromaIndex(ChromaConfig(url="http://127.0.0.1:9"), tmp_path)


def test_bm25_tokens_are_bm25s_stemmed_words_without_stop_words() -> None:
    assert tokenize("Counting the counts: he counted 3 objects") == ["count", "count", "he", "count", "object"]


def test_an_index_from_another_tokenizer_is_rebuilt_not_misread(tmp_path: Path) -> None:
    samples = list(pool(0, 30))
    index_pool(samples, tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    (tmp_path / BM25_DIR / TOKENIZER_FILE).unlink()  # as written before the index used bm25s's tokenizer
    with pytest.raises(FileNotFoundError, match="another tokenizer.*re-run pool indexing"):
        PoolIndex.open(tmp_path)
    report = index_pool(samples, tmp_path, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    assert report.embedded_groups == 0  # only the BM25 half is rebuilt; the embeddings stay
    rebuilt = PoolIndex.open(tmp_path)
    best = rebuilt.query(COUNTING, 1, "bm25")[0]
    assert "counting" in rebuilt.skills_by_id()[best.sample_id]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 10])
def test_a_bm25_ranking_cut_at_a_depth_is_the_prefix_of_the_whole_one(depth: int) -> None:
    documents = ["red cube counting", "red", "red", "blue cube", "counting counting red", "blue"]
    lexical = BM25Index.build([f"d{i}" for i in range(len(documents))], documents)
    whole = lexical.ranked("red counting")
    assert len(whole) == 4 and lexical.ranked("red counting", depth) == whole[:depth]
    assert [gid for gid, _ in whole][-2:] == ["d1", "d2"], "ties keep index order"


def test_the_collection_count_is_read_once_and_follows_each_add(tmp_path: Path) -> None:
    import numpy as np

    store = ChromaIndex(ChromaConfig(), tmp_path)
    vectors = np.eye(4, dtype=np.float32)
    store.add(["a", "b", "c"], [{"task": "t"}] * 3, vectors[:3])
    assert store.count() == 3
    store._collection.delete(ids=["a", "b"])  # behind its back: the cached count stands until the next add
    assert store.count() == 3
    store.add(["d"], [{"task": "t"}], vectors[3:])
    assert store.count() == 2 and next(gid for gid, _ in store.nearest(vectors[3], 10)) == "d"
