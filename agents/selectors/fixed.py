"""`fixed`: replay a given list of pool ids, e.g. another student's error-driven choice (the swap test).

`selector_options: {ids: FILE}` names the file, one pool sample id per line,
read once in file order; an id the pool lacks is an error naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs, parse_options
from gaptune.data.errors import ConfigError
from gaptune.data.records import Selection, SelectionItem


def fixed_selection(ids: Sequence[str], budget: int, used: Iterable[str] = (), *, strategy: str) -> Selection:
    """The next `budget` unused ids of a given list, in its order (the ceiling's target samples, a swapped selection)."""
    excluded = set(used)
    chosen = [sample_id for sample_id in ids if sample_id not in excluded][:budget]
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method=strategy, score=0.0, rank=rank)
             for rank, sample_id in enumerate(chosen, start=1)]
    return Selection(strategy=strategy, budget=budget, allocation={}, items=items,
                     shortfall={"": budget - len(items)} if len(items) < budget else {})


class FixedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: str  # a file with one pool sample id per line


class Fixed(PlainStrategy):
    name = "fixed"
    needs = Needs()

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = parse_options(self.name, FixedOptions, options)

    @cached_property
    def ids(self) -> list[str]:
        path = Path(self.options.ids)
        try:
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        except FileNotFoundError as error:
            raise ConfigError(f"selector_options.ids: {path} does not exist") from error

    def select(self, inputs: RoundInputs) -> Selection:
        pool = set(inputs.pool_ids)
        unknown = [sample_id for sample_id in self.ids if sample_id not in pool]
        if unknown:
            raise ConfigError(f"selector_options.ids: {len(unknown)} ids of {self.options.ids} are not in the pool "
                              f"(e.g. {unknown[0]!r})")
        return fixed_selection(self.ids, inputs.budget, inputs.used, strategy=self.name)


STRATEGY = Fixed
