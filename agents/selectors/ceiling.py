"""`ceiling`: the same budget of true target-task samples, drawn beside the probe split: what real data would give."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gaptune.agents.selectors.fixed import fixed_selection
from gaptune.agents.selectors.protocol import Needs, RoundInputs, SelectorSetup, no_options
from gaptune.data.records import Selection


class Ceiling:
    name = "ceiling"
    needs = Needs()

    def __init__(self, options: Mapping[str, Any]) -> None:
        no_options(self.name, options)

    def check(self, setup: SelectorSetup) -> None:
        if not setup.world_task and setup.ceiling_file is None:
            raise ValueError("selection 'ceiling' needs task.ceiling (target-task training data) for file tasks")

    def stop_after_round(self) -> str | None:
        return None

    def select(self, inputs: RoundInputs) -> Selection:
        return fixed_selection(inputs.ceiling_ids, inputs.budget, inputs.used, strategy=self.name)


STRATEGY = Ceiling
