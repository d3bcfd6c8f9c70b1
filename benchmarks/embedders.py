"""Embedders side by side on the built-in world: speed (docs/s on 2 cores) and retrieval quality.

For each embedder: the time to embed the pool's distinct documents (after a warm-up, the one-time
distillation of a static model excluded and printed apart), then an index of the pool built with it and
two kinds of query per skill, as the selectors send them:
  - skill query: the gap's label and description (error-driven with skill labels);
  - step query: gold step texts of the target tasks that exercise the skill (step-query);
quality = per gap, the share of the top-k dense hits whose sample truly teaches the gap's skill.

    .venv/bin/python benchmarks/embedders.py [--pool-size 20000] [--k 100] [--embedders NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from gaptune.agents.retriever import gap_query
from gaptune.data.world.families import SKILL_DESCRIPTIONS
from gaptune.data.world.world import TASKS, pool, task_split
from gaptune.tools.embedder import DEFAULT_EMBEDDING_MODEL, STATIC_PREFIX, load_embedder
from gaptune.tools.pool_documents import document_text
from gaptune.tools.pool_index import PoolIndex, index_pool

STATIC = STATIC_PREFIX + DEFAULT_EMBEDDING_MODEL


def step_queries(per_skill: int) -> dict[str, list[str]]:
    """Distinct gold step texts of the target tasks' val splits, by the skill each step exercises."""
    queries: dict[str, list[str]] = defaultdict(list)
    for task in TASKS:
        for sample in task_split(task, "val", 0, size=40):
            for step in sample.steps or []:
                if step.text not in queries[step.skill] and len(queries[step.skill]) < per_skill:
                    queries[step.skill].append(step.text)
    return dict(queries)


def precision(index: PoolIndex, text: str, skill: str, k: int) -> float:
    skills = index.skills_by_id()
    hits = index.query(text, k, "dense")
    return sum(skill in skills[hit.sample_id] for hit in hits) / max(len(hits), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool-size", type=int, default=20_000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--embedders", nargs="+", default=[DEFAULT_EMBEDDING_MODEL, STATIC])
    args = parser.parse_args()
    samples = list(pool(0, args.pool_size))
    documents = list(dict.fromkeys(document_text(s, SKILL_DESCRIPTIONS) for s in samples))
    steps = step_queries(per_skill=5)
    print(f"pool: {len(samples)} samples, {len(documents)} distinct documents; k={args.k}; "
          f"step queries for {len(steps)} skills")
    rows = []
    for name in args.embedders:
        started = time.perf_counter()
        embedder = load_embedder(name)
        embedder.encode(documents[:64])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        embedder.encode(documents)
        speed = len(documents) / (time.perf_counter() - started)
        with tempfile.TemporaryDirectory() as directory:
            index_pool(samples, Path(directory), embedding_model=name, skill_descriptions=SKILL_DESCRIPTIONS,
                       progress=False)
            index = PoolIndex.open(Path(directory))
            vocabulary = index.skill_vocabulary()
            by_skill = {skill: precision(index, gap_query(skill, vocabulary), skill, args.k) for skill in vocabulary}
            by_step = {skill: statistics.mean(precision(index, text, skill, args.k) for text in texts)
                       for skill, texts in steps.items() if skill in vocabulary}
        rows.append((name, load_s, speed, by_skill, by_step))
        print(f"{name}: load {load_s:.1f} s (a static model's first load includes its distillation), "
              f"{speed:.0f} docs/s, skill-query precision {statistics.mean(by_skill.values()):.3f}, "
              f"step-query precision {statistics.mean(by_step.values()):.3f}")
    print("\n| embedder | docs/s | skill query | step query |\n|---|---|---|---|")
    for name, _, speed, by_skill, by_step in rows:
        print(f"| {name} | {speed:.0f} | {statistics.mean(by_skill.values()):.3f} | "
              f"{statistics.mean(by_step.values()):.3f} |")
    base = rows[0]
    for name, _, speed, _, _ in rows[1:]:
        print(f"speed-up ({name} vs {base[0]}): {speed / base[2]:.1f}x")
    print("\nper gap (skill query / step query):")
    for skill in rows[0][3]:
        cells = "  ".join(f"{r[0]} {r[3][skill]:.2f}/{r[4].get(skill, float('nan')):.2f}" for r in rows)
        print(f"  {skill}: {cells}")


if __name__ == "__main__":
    main()
