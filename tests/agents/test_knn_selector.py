"""The knn selector on a real pool index: the probe questions' nearest pool samples, budget split and deduped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gaptune.agents.selectors.registry import build_selector
from gaptune.graph.config import load_config
from gaptune.graph.resources import Resources
from gaptune.graph.round_inputs import StateRoundInputs
from gaptune.graph.run_dir import RunDir
from gaptune.graph.state import LoopState
from gaptune.tools.embedder import load_embedder
from gaptune.tools.pool_documents import document_text

pytestmark = pytest.mark.slow  # a dense index over 600 pool samples and a loaded world


def test_knn_picks_the_pool_samples_nearest_the_probe_questions(tmp_path: Path, cache_dir: Path) -> None:
    config = load_config(None, [f"cache_dir={cache_dir}", "selection=knn", "task.probe_size=30", "task.val_size=10",
                                "task.test_size=10", "pool.size=600", "round_budget=40", "budget=80"])
    run = RunDir(tmp_path / "run")
    run.root.mkdir(parents=True)
    res = Resources(config, run)
    assert res.selector.needs.errors is False and res.selector.needs.gold_steps is False
    used = list(res.data.pool)[:5]
    selection = res.selector.select(StateRoundInputs(res, LoopState(round=1, used=used)))  # type: ignore[attr-defined]
    ids = selection.sample_ids
    assert selection.strategy == "knn/dense" and len(ids) == len(set(ids)) == 40 and not set(ids) & set(used)
    questions = Counter(s.question for s in res.data.splits["probe"])
    assert set(selection.allocation) <= set(questions) and sum(selection.allocation.values()) == 40
    assert {item.method for item in selection.items} == {"dense"}
    # the most asked question's first pick (no other query claims before it) is its nearest pool document by
    # brute-force cosine, outside Chroma
    embedder = load_embedder(res.search.index.manifest.embedding_model)
    eligible = [s for s in res.data.pool.values() if s.id not in used]
    documents = embedder.encode([document_text(s, res.data.skill_vocabulary) for s in eligible])
    question = min(selection.allocation, key=lambda q: (-questions[q], q))
    query = embedder.encode([question])[0]
    cosine = documents @ query / (np.linalg.norm(documents, axis=1) * np.linalg.norm(query))
    first = next(item for item in selection.items if item.gap == question and item.rank == 1)
    nearest = {res.search.index.group_of(s.id) for s, c in zip(eligible, cosine, strict=True) if c >= cosine.max() - 1e-5}
    assert res.search.index.group_of(first.sample_id) in nearest
    assert first.score == pytest.approx(float(cosine.max()), abs=1e-4)
    assert build_selector("knn").stop_after_round() is None
