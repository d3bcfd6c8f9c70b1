"""`ceiling`: the same budget of true target-task samples, drawn beside the probe split: what real data would give."""

from __future__ import annotations

from gaptune.agents.selectors.fixed import fixed_selection
from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs, SelectorSetup
from gaptune.data.records import Selection


class Ceiling(PlainStrategy):
    name = "ceiling"
    needs = Needs()

    def check(self, setup: SelectorSetup) -> None:
        if not setup.world_task and setup.ceiling_file is None:
            raise ValueError("selection 'ceiling' needs task.ceiling (target-task training data) for file tasks")

    def select(self, inputs: RoundInputs) -> Selection:
        return fixed_selection(inputs.ceiling_ids, inputs.budget, inputs.used, strategy=self.name)


STRATEGY = Ceiling
