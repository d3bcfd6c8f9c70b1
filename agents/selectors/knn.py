"""`knn`: the pool samples nearest to the probe items in the pool's dense (Chroma) index.

The simplest similarity baseline: no errors, no teacher, no gold steps. Each
distinct probe question is one query, weighted by how many probe items ask
it; the budget is split by weight, and dedupe and top-up are the
retriever's, so it differs from the error-driven arm only in what the
queries are (the task's questions rather than the student's gaps) and in
ranking by embedding similarity alone.
"""

from __future__ import annotations

from collections import Counter

from gaptune.agents.retriever import merge_gaps, search_gap, split_budget
from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs
from gaptune.data.records import Selection


class Knn(PlainStrategy):
    name = "knn"
    needs = Needs()

    def select(self, inputs: RoundInputs) -> Selection:
        profile = dict(Counter(sample.question for sample in inputs.probe))
        allocation = split_budget(profile, inputs.budget)
        config = inputs.retrieval.model_copy(update={"method": "dense"})
        ranked = {question: search_gap(inputs.index, question, quota, inputs.used, config)
                  for question, quota in allocation.items()}
        return merge_gaps(inputs.index, ranked, allocation, profile, inputs.used, config, strategy="knn/dense")


STRATEGY = Knn
