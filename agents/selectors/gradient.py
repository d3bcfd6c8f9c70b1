"""`gradient`: LESS-style influence; pool samples whose (Adam-preconditioned) LoRA gradient points where the
targets' gradients point.

Targets are the probe's wrong cases on their gold answers (`targets: wrong`,
the default), or every probe item (`targets: all`, which needs no errors).
Wrong cases are grouped by the gap their critique was classified as (cases
without a kept critique form one group), so the budget is split by error
share like the error-driven arm's, each group ranks the whole pool by the
mean cosine to its targets (LESS's per-task mean), and dedupe across groups
is the retriever's. The features come from a datastore the graph builds
once per student, pool and warm-up (training/gradient_datastore.py), set by
`selector_options.datastore`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from gaptune.agents.retriever import merge_gaps, split_budget
from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs, parse_options
from gaptune.data.records import Selection, SelectionItem

UNCLASSIFIED = "(no critique)"


class GradientOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    targets: Literal["wrong", "all"] = "wrong"
    # The warm-up and projection (training/gradient_datastore.DatastoreSettings), checked before any work.
    datastore: dict[str, Any] = Field(default_factory=dict)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.asarray(matrix / np.maximum(norms, 1e-12), dtype=np.float32)


class Gradient(PlainStrategy):
    name = "gradient"

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = parse_options(self.name, GradientOptions, options)
        self.needs = Needs(errors=self.options.targets == "wrong", datastore=True)

    def select(self, inputs: RoundInputs) -> Selection:
        probe = {s.id: s for s in inputs.probe}
        if self.options.targets == "all":
            groups = {"probe": list(probe)}
        else:
            groups = defaultdict(list)
            for case in inputs.wrong_cases:
                groups[inputs.case_gaps.get(case) or UNCLASSIFIED].append(case)
        target_ids = [case for cases in groups.values() for case in cases]
        features = inputs.gradient_features([probe[i] for i in target_ids], self.options.datastore)
        pool, targets = _unit_rows(features.pool), _unit_rows(features.targets)
        row_of = {target_id: row for row, target_id in enumerate(features.target_ids)}
        profile = {gap: len(cases) for gap, cases in groups.items()}
        allocation = split_budget(profile, inputs.budget)
        excluded = set(inputs.used)
        eligible = np.array([sample_id not in excluded for sample_id in features.pool_ids])
        depth = sum(allocation.values())
        ranked = {}
        for gap in allocation:
            scores = pool @ targets[[row_of[case] for case in groups[gap]]].mean(axis=0)
            scores = np.where(eligible, scores, -np.inf)
            top = np.argsort(-scores, kind="stable")[:depth]
            ranked[gap] = [SelectionItem(sample_id=features.pool_ids[row], gap=gap, query=f"{len(groups[gap])} targets",
                                         method="gradient", score=float(scores[row]), rank=rank)
                           for rank, row in enumerate((r for r in top if eligible[r]), start=1)]
        return merge_gaps(None, ranked, allocation, profile, excluded, inputs.retrieval,
                          strategy=f"gradient/{self.options.targets}")


STRATEGY = Gradient
