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
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gaptune.data.records import Selection, SelectionItem
from gaptune.tools.chroma_index import ChromaConfig
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL
from gaptune.tools.pool_index import DEFAULT_RRF_K, Hit, Method, PoolIndex

_MAX_WORKERS = 8
Query = Literal["skill", "step-text"]


class RetrievalConfig(BaseModel):
    """How the retriever queries the pool; `chroma` empty means the embedded store inside the index dir."""

    model_config = ConfigDict(extra="forbid")

    method: Method = "fused"
    # skill: one query per gap label (the method); step-text: the student's wrong step
    # as written is the query (ablation: retrieval without skill analysis).
    query: Query = "skill"
    rrf_k: int = Field(default=DEFAULT_RRF_K, ge=1)
    oversample: float = Field(default=2.0, ge=1.0)
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    chroma: ChromaConfig = Field(default_factory=ChromaConfig)


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
    vocabulary = index.skill_vocabulary()
    queries = {gap: gap_query(gap, vocabulary) for gap in allocation}
    order = sorted(allocation, key=lambda g: (-profile[g], g))
    depth = {gap: math.ceil(n * config.oversample) for gap, n in allocation.items()}
    chosen: dict[str, SelectionItem] = {}
    exhausted: set[str] = set()

    def search(gap: str) -> list[Hit]:
        return index.query(queries[gap], depth[gap], config.method, excluded,
                           rrf_k=config.rrf_k, oversample=config.oversample)

    pending = list(order)
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(order) or 1)) as pool:
        while pending:
            results = dict(zip(pending, pool.map(search, pending), strict=True))
            # Visit every gap's hits rank by rank, so a sample wanted by two gaps goes to the one ranking it higher.
            claims = sorted(((hit.rank, order.index(gap), gap, hit) for gap, hits in results.items() for hit in hits),
                            key=lambda claim: claim[:2])
            filled = {gap: sum(1 for item in chosen.values() if item.gap == gap) for gap in order}
            for _, _, gap, hit in claims:
                if filled[gap] < allocation[gap] and hit.sample_id not in chosen:
                    chosen[hit.sample_id] = SelectionItem(sample_id=hit.sample_id, gap=gap, query=queries[gap],
                                                          method=hit.method, score=hit.score, rank=hit.rank)
                    filled[gap] += 1
            for gap, hits in results.items():
                if len(hits) < depth[gap]:
                    exhausted.add(gap)
            pending = [gap for gap in order if filled[gap] < allocation[gap] and gap not in exhausted]
            for gap in pending:
                depth[gap] *= 2
    filled = {gap: sum(1 for item in chosen.values() if item.gap == gap) for gap in order}
    items = sorted(chosen.values(), key=lambda item: (order.index(item.gap), item.rank))
    return Selection(
        strategy=f"error-driven/{config.method}", budget=budget, allocation=allocation, items=items,
        shortfall={gap: allocation[gap] - filled[gap] for gap in order if filled[gap] < allocation[gap]},
    )
