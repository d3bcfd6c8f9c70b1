"""The retriever agent: turn a gap profile into this round's pool samples.

Following MLLM-DataEngine's adaptive bad-case sampling, the round's budget is
split across gaps by each gap's share of the errors; each gap is queried in
parallel; a sample found by two gaps is kept once (by the gap that ranked it
higher); samples used in earlier rounds are excluded; and a gap that lost
samples to another gap or to exclusion tops up from its next-ranked hits.
Every chosen sample keeps the query, method, score and rank that chose it,
which is what `gaptune trace --sample ID` prints.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gaptune.data.records import Selection, SelectionItem
from gaptune.tools.chroma_index import ChromaConfig
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL
from gaptune.tools.pool_index import DEFAULT_RRF_K, Method, PoolIndex, check_where

_MAX_WORKERS = 8
Query = Literal["skill", "step-text"]


class RetrievalConfig(BaseModel):
    """How the retriever queries the pool; `chroma` empty means the embedded store inside the index dir."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "fused"
    # step-text: the student's wrong step as written is the query; skill: one query per classified gap
    # label. step-text was chosen on val of the crossover table (mean 0.476 v 0.470 over its two
    # students, 5 seeds; docs/crossover.md), as registered there; the first world's default loop
    # leaned the other way on val (0.925 v 0.933), both inside seed noise.
    query: Query = "step-text"
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=1)
    oversample: float = Field(default=2.0, ge=1.0)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    chroma: ChromaConfig = Field(default_factory=ChromaConfig)
    # Only pool samples whose fields have one of these values, e.g. {source: [llava-665k]}; fields: task, source.
    # Runs inside Chroma's search (and on BM25's matches), so a narrow filter still fills its quota.
    where: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("where")
    @classmethod
    def _known_fields(cls, where: dict[str, list[str]]) -> dict[str, list[str]]:
        check_where(where)
        return where


def split_budget(profile: Mapping[str, int], budget: int) -> dict[str, int]:
    """Budget per gap in proportion to its errors (largest remainder), each gap with errors getting >= 1 if it fits.

    Ties (equal remainders) go to the gap with more errors, then by label, so
    the split is deterministic. When the budget is smaller than the number of
    gaps, the gaps with the most errors get one each.
    """
    gaps = sorted((label for label, errors in profile.items() if errors > 0), key=lambda g: (-profile[g], g))
    if budget <= 0 or not gaps:
        return {}
    if budget < len(gaps):
        return {gap: 1 for gap in gaps[:budget]}
    total = sum(profile[g] for g in gaps)
    quota = {g: budget * profile[g] / total for g in gaps}
    allocation = {g: math.floor(quota[g]) for g in gaps}
    left = budget - sum(allocation.values())
    for gap in sorted(gaps, key=lambda g: (-(quota[g] - allocation[g]), -profile[g], g))[:left]:
        allocation[gap] += 1
    for gap in [g for g in gaps if allocation[g] == 0]:
        donor = max((g for g in gaps if allocation[g] > 1), key=lambda g: (allocation[g] - quota[g], profile[g]))
        allocation[donor] -= 1
        allocation[gap] = 1
    return allocation


def gap_query(gap: str, vocabulary: Mapping[str, str]) -> str:
    """The query text for a gap: the label and, when the pool knows it, its description (what documents contain)."""
    description = vocabulary.get(gap, "")
    return f"{gap}: {description}" if description else gap


def search_gap(index: PoolIndex, gap: str, quota: int, excluded: Iterable[str] = (),
               config: RetrievalConfig | None = None, *, depth: int | None = None) -> list[SelectionItem]:
    """One gap's ranked candidates, `quota x oversample` deep (or `depth`), never an excluded id."""
    config = config or RetrievalConfig()
    query = gap_query(gap, index.skill_vocabulary())
    hits = index.query(query, depth or math.ceil(quota * config.oversample), config.method, set(excluded),
                       rrf_k=config.rrf_k, oversample=config.oversample, where=config.where or None)
    return [SelectionItem(sample_id=hit.sample_id, gap=gap, query=query, method=hit.method, score=hit.score, rank=hit.rank)
            for hit in hits]


def merge_gaps(
    index: PoolIndex | None,
    ranked: Mapping[str, Sequence[SelectionItem]],
    allocation: Mapping[str, int],
    profile: Mapping[str, int],
    used: Iterable[str] = (),
    config: RetrievalConfig | None = None,
    *,
    strategy: str,
) -> Selection:
    """Each gap's ranked candidates into one selection: dedupe across gaps, then top up.

    Hits are visited rank by rank, so a sample wanted by two gaps goes to the
    one ranking it higher (ties: the gap with more errors). A gap left short
    (samples lost to another gap) searches twice as deep until it is full or
    the pool has nothing more for it; without an `index` the rankings are
    taken as complete (a selector that ranks the whole pool itself).
    """
    config = config or RetrievalConfig()
    excluded = set(used)
    order = sorted(allocation, key=lambda g: (-profile.get(g, 0), g))
    results = {gap: list(ranked.get(gap, ())) for gap in order}
    depth = {gap: max(len(items), math.ceil(allocation[gap] * config.oversample)) for gap, items in results.items()}
    exhausted = {gap for gap, items in results.items() if index is None or len(items) < depth[gap]}
    chosen: dict[str, SelectionItem] = {}
    while True:
        claims = sorted(((item.rank, order.index(gap), item) for gap in order for item in results[gap]),
                        key=lambda claim: claim[:2])
        filled = {gap: sum(1 for item in chosen.values() if item.gap == gap) for gap in order}
        for _, _, item in claims:
            if filled[item.gap] < allocation[item.gap] and item.sample_id not in chosen:
                chosen[item.sample_id] = item
                filled[item.gap] += 1
        pending = [gap for gap in order if filled[gap] < allocation[gap] and gap not in exhausted]
        if not pending or index is None:  # without an index every gap is exhausted: none is pending
            break
        for gap in pending:
            depth[gap] *= 2
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(pending))) as workers:
            deeper = workers.map(lambda g: search_gap(index, g, allocation[g], excluded, config, depth=depth[g]), pending)
            for gap, items in zip(pending, deeper, strict=True):
                results[gap] = items
                if len(items) < depth[gap]:
                    exhausted.add(gap)
    items = sorted(chosen.values(), key=lambda item: (order.index(item.gap), item.rank))
    return Selection(
        strategy=strategy, budget=sum(allocation.values()), allocation=dict(allocation), items=items,
        shortfall={gap: allocation[gap] - filled[gap] for gap in order if filled[gap] < allocation[gap]},
    )


def retrieve(
    index: PoolIndex,
    profile: Mapping[str, int],
    budget: int,
    used: Iterable[str] = (),
    config: RetrievalConfig | None = None,
) -> Selection:
    """Choose up to `budget` unused pool samples for the gaps in `profile` ({label: error count})."""
    config = config or RetrievalConfig()
    allocation = split_budget(profile, budget)
    excluded = set(used)
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(allocation) or 1)) as workers:
        ranked = dict(zip(allocation, workers.map(lambda g: search_gap(index, g, allocation[g], excluded, config),
                                                    allocation), strict=True))
    return merge_gaps(index, ranked, allocation, profile, excluded, config, strategy=f"error-driven/{config.method}")
