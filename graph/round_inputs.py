"""`RoundInputs` for the selectors: the round's state and the run's resources, read only when a selector asks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gaptune.agents.retriever import RetrievalConfig
from gaptune.agents.selectors.protocol import GradientFeatures
from gaptune.data.sample import Sample
from gaptune.graph.resources import Resources
from gaptune.graph.state import LoopState
from gaptune.tools.pool_index import PoolIndex


def round_budget(res: Resources, state: LoopState) -> int:
    """This round's pool budget: `round_budget`, or what is left of the run's `budget`."""
    return min(res.config.round_budget, max(0, res.config.budget - len(state.get("used", []))))


class StateRoundInputs:
    """What one round offers a selector; the pool index and the datastore are opened on first use."""

    def __init__(self, res: Resources, state: LoopState) -> None:
        self._res = res
        self._state = state

    @property
    def round(self) -> int:
        return self._state["round"]

    @property
    def budget(self) -> int:
        return round_budget(self._res, self._state)

    @property
    def used(self) -> Sequence[str]:
        return self._state.get("used", [])

    @property
    def seed(self) -> int:
        return self._res.config.seed

    @property
    def pool_ids(self) -> Sequence[str]:
        return list(self._res.data.pool)

    @property
    def index(self) -> PoolIndex:
        return self._res.search.index

    @property
    def retrieval(self) -> RetrievalConfig:
        return self._res.config.retrieval

    @property
    def probe(self) -> Sequence[Sample]:
        return self._res.data.splits["probe"]

    @property
    def wrong_cases(self) -> Sequence[str]:
        return self._state.get("wrong_cases", [])

    @property
    def case_gaps(self) -> Mapping[str, str]:
        return self._state.get("case_gaps", {})

    @property
    def ceiling_ids(self) -> Sequence[str]:
        return list(self._res.data.ceiling_samples)

    def gradient_features(self, targets: Sequence[Sample], datastore: Mapping[str, Any]) -> GradientFeatures:
        return self._res.search.gradient_features(targets, datastore)
