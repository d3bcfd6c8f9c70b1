"""`random`, the paper's main comparison: the same budget drawn uniformly from the pool, no targeting."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs
from gaptune.data.records import Selection, SelectionItem


def random_selection(pool_ids: Sequence[str], budget: int, used: Iterable[str] = (), *, seed: int) -> Selection:
    """`budget` ids drawn uniformly from the pool minus `used`; the same seed gives the same draw."""
    excluded = set(used)
    eligible = [sample_id for sample_id in pool_ids if sample_id not in excluded]
    drawn = random.Random(seed).sample(eligible, min(budget, len(eligible)))
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method="random", score=0.0, rank=rank)
             for rank, sample_id in enumerate(drawn, start=1)]
    return Selection(strategy="random", budget=budget, allocation={}, items=items,
                     shortfall={"": budget - len(items)} if len(items) < budget else {})


class RandomDraw(PlainStrategy):
    name = "random"
    needs = Needs()

    def select(self, inputs: RoundInputs) -> Selection:
        # A new draw each round and seed: round r of seed s draws with seed s * 1000 + r.
        return random_selection(inputs.pool_ids, inputs.budget, inputs.used, seed=inputs.seed * 1000 + inputs.round)


STRATEGY = RandomDraw
