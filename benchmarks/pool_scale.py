"""A pool at real scale: generate, import, index and query a synthetic pool of mostly distinct texts.

Prints, per phase: rows/s of `gaptune pool import` (images checked), documents/s of indexing (record, embed,
Chroma, BM25) per embedder, query latency p50/p95 per gap (k=100, dense and fused), retrieval precision per gap
against the rows' true skills, and peak RSS of the process after import and after each index.
Goals on 2 cores (issue "pools at real scale"): 1M rows indexed in <= 30 min with the default embedder,
query p50 <= 20 ms, peak RSS <= 2 GB during import.

    .venv/bin/python benchmarks/pool_scale.py [--size 100000] [--embedders model2vec:all-MiniLM-L6-v2 ...] [--dir DIR]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from gaptune.data.llava_format import RowSamples
from gaptune.data.loaders import iter_rows
from gaptune.data.pool_import import POOL_FILE, import_pool
from gaptune.data.sample import Sample
from gaptune.data.synthetic_pool import FAMILIES, write_synthetic_pool
from gaptune.tools.embedder import STATIC_PREFIX
from gaptune.tools.pool_index import PoolIndex, index_pool

QUERIES = {skill: f"{skill}: questions that need {skill}" for skills, _, _ in FAMILIES.values() for skill in skills}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def imported(pool: Path) -> Iterator[Sample]:
    for row in iter_rows(pool):
        if isinstance(row, RowSamples):  # an imported pool has no bad rows; nothing else to skip
            yield from row.samples


def run(size: int, embedders: list[str], root: Path) -> None:
    source = root / "source" / "pool.jsonl"
    started = time.perf_counter()
    write_synthetic_pool(source, size)
    print(f"generate {size} rows: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    report = import_pool(source, root / "imported", progress=False)
    took = time.perf_counter() - started
    print(f"import: {report.rows} rows -> {report.samples} samples, {report.rejected} rejected, {took:.1f} s "
          f"({report.rows / took:.0f} rows/s); peak RSS so far {peak_rss_mb():.0f} MB")
    pool = root / "imported" / POOL_FILE
    for name in embedders:
        directory = root / f"index-{name.replace(':', '-').replace('/', '-')}"
        started = time.perf_counter()
        built = index_pool(imported(pool), directory, embedding_model=name, progress=False)
        took = time.perf_counter() - started
        print(f"index ({name}): {built.manifest.samples} samples, {built.manifest.groups} documents, {took:.1f} s "
              f"({built.manifest.samples / took:.0f} samples/s); peak RSS so far {peak_rss_mb():.0f} MB")
        index = PoolIndex.open(directory)
        skills = index.skills_by_id()
        for method in ("dense", "fused"):
            index.query(next(iter(QUERIES.values())), 10, method)  # warm-up
            times, shares = [], []
            for skill, text in QUERIES.items():
                for _ in range(5):
                    begun = time.perf_counter()
                    hits = index.query(text, 100, method)
                    times.append(1000 * (time.perf_counter() - begun))
                shares.append(sum(skill in skills[h.sample_id] for h in hits) / max(len(hits), 1))
            times.sort()
            print(f"  query {method}: p50 {statistics.median(times):.1f} ms, p95 {times[int(0.95 * len(times))]:.1f} ms "
                  f"over {len(times)} queries; precision@100 per gap mean {statistics.mean(shares):.3f} "
                  f"(min {min(shares):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--embedders", nargs="+", default=[STATIC_PREFIX + "all-MiniLM-L6-v2"])
    parser.add_argument("--dir", type=Path, default=None, help="keep everything here (default: a temporary folder)")
    args = parser.parse_args()
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        run(args.size, args.embedders, args.dir)
        return
    with tempfile.TemporaryDirectory() as directory:
        run(args.size, args.embedders, Path(directory))


if __name__ == "__main__":
    main()
