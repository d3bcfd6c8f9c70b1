"""`probe-only`: no pool data at all; the arm trains on the probe split alone (what every arm also trains on)."""

from __future__ import annotations

from gaptune.agents.selectors.protocol import Needs, PlainStrategy, RoundInputs
from gaptune.data.records import Selection


class ProbeOnly(PlainStrategy):
    name = "probe-only"
    needs = Needs(pool_data=False)

    def select(self, inputs: RoundInputs) -> Selection:
        return Selection(strategy=self.name, budget=0, allocation={}, items=[])


STRATEGY = ProbeOnly
