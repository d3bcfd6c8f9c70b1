"""`probe-only`: no pool data at all; the arm trains on the probe split alone (what every arm also trains on)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gaptune.agents.selectors.protocol import Needs, RoundInputs, SelectorSetup, no_options
from gaptune.data.records import Selection


class ProbeOnly:
    name = "probe-only"
    needs = Needs(pool_data=False)

    def __init__(self, options: Mapping[str, Any]) -> None:
        no_options(self.name, options)

    def check(self, setup: SelectorSetup) -> None:
        return None

    def stop_after_round(self) -> str | None:
        return None

    def select(self, inputs: RoundInputs) -> Selection:
        return Selection(strategy=self.name, budget=0, allocation={}, items=[])


STRATEGY = ProbeOnly
