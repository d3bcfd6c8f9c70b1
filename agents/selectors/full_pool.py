"""`full`: every pool sample, in one round (the paper's all-data comparison)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs
from gaptune.data.records import Selection, SelectionItem


def full_selection(pool_ids: Sequence[str], used: Iterable[str] = ()) -> Selection:
    """Every pool sample not used yet, in pool order."""
    excluded = set(used)
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method="full", score=0.0, rank=rank)
             for rank, sample_id in enumerate((s for s in pool_ids if s not in excluded), start=1)]
    return Selection(strategy="full", budget=len(items), allocation={}, items=items)


class FullPool(PlainStrategy):
    name = "full"
    needs = Needs()

    def stop_after_round(self) -> str | None:
        return "full pool trained in one round"

    def select(self, inputs: RoundInputs) -> Selection:
        return full_selection(inputs.pool_ids, inputs.used)


STRATEGY = FullPool
