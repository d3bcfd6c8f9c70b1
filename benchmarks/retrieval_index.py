"""Pool indexing throughput and query latency on the built-in world pool.

Prints, measured side by side in one run:
  1. embedding a subset naively (one text per sample) vs once per distinct
     document, and the ratio;
  2. indexing the whole pool (record, embed, BM25, manifest), then re-indexing
     it (everything skipped);
  3. query latency per method (k=100, 10,000 ids excluded).

    .venv/bin/python benchmarks/retrieval_index.py [--pool-size 50000] [--subset 2000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gaptune.agents.retriever import gap_query
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import pool
from gaptune.tools.embedder import load_embedder
from gaptune.tools.pool_documents import document_text
from gaptune.tools.pool_index import METHODS, PoolIndex, index_pool


def embedding_ratio(subset: int) -> None:
    documents = [document_text(sample, SKILL_DESCRIPTIONS) for sample in pool(0, subset)]
    distinct = list(dict.fromkeys(documents))
    embedder = load_embedder()
    embedder.encode(distinct[:8])
    start = time.perf_counter()
    embedder.encode(documents)
    naive = time.perf_counter() - start
    start = time.perf_counter()
    embedder.encode(distinct)
    dedup = time.perf_counter() - start
    print(f"embedding {subset} samples: naive {len(documents)} texts {naive:.1f}s | "
          f"dedup {len(distinct)} texts {dedup:.1f}s | naive/dedup = {naive / dedup:.1f}x")


def index_and_query(pool_size: int, index_dir: Path) -> None:
    start = time.perf_counter()
    report = index_pool(pool(0, pool_size), index_dir, skill_descriptions=SKILL_DESCRIPTIONS, progress=True)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = index_pool(pool(0, pool_size), index_dir, skill_descriptions=SKILL_DESCRIPTIONS, progress=False)
    second = time.perf_counter() - start
    print(f"index {pool_size} samples ({report.manifest.groups} distinct documents embedded): {first:.1f}s | "
          f"re-index (skipped {again.skipped_samples}, embedded {again.embedded_groups}): {second:.1f}s")
    index = PoolIndex.open(index_dir)
    vocabulary = index.skill_vocabulary()
    queries = [gap_query(skill, vocabulary) for skill in vocabulary]
    excluded = set(index.sample_ids()[: min(10_000, pool_size // 2)])
    for method in METHODS:
        index.query(queries[0], 10, method)  # type: ignore[arg-type]
        times = []
        for text in queries * 3:
            start = time.perf_counter()
            hits = index.query(text, 100, method, excluded)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
            assert not {hit.sample_id for hit in hits} & excluded
        print(f"query {method:5s}: median {1000 * statistics.median(times):.1f} ms, "
              f"max {1000 * max(times):.1f} ms over {3 * len(queries)} skill queries (k=100, {len(excluded)} excluded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool-size", type=int, default=50_000)
    parser.add_argument("--subset", type=int, default=2000, help="samples for the naive vs dedup embedding ratio")
    parser.add_argument("--index-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    embedding_ratio(args.subset)
    if args.index_dir is not None:
        index_and_query(args.pool_size, args.index_dir)
    else:
        with tempfile.TemporaryDirectory() as directory:
            index_and_query(args.pool_size, Path(directory))


if __name__ == "__main__":
    main()
