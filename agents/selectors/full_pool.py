"""`full`: every pool sample, in one round (the paper's all-data comparison)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gaptune.agents.selectors.protocol import Needs, RoundInputs, SelectorSetup, no_options
from gaptune.data.records import Selection, SelectionItem


def full_selection(pool_ids: Sequence[str], used: Iterable[str] = ()) -> Selection:
    """Every pool sample not used yet, in pool order."""
    excluded = set(used)
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method="full", score=0.0, rank=rank)
             for rank, sample_id in enumerate((s for s in pool_ids if s not in excluded), start=1)]
    return Selection(strategy="full", budget=len(items), allocation={}, items=items)


class FullPool:
    name = "full"
    needs = Needs()

    def __init__(self, options: Mapping[str, Any]) -> None:
        no_options(self.name, options)

    def check(self, setup: SelectorSetup) -> None:
        return None

    def stop_after_round(self) -> str | None:
        return "full pool trained in one round"

    def select(self, inputs: RoundInputs) -> Selection:
        return full_selection(inputs.pool_ids, inputs.used)


STRATEGY = FullPool
