"""`skill-mix`, a static arm: the budget split over skills the config names, errors ignored.

`selector_options: {skills: {size: 1, counting: 1}}` spends the budget on
those skills in those proportions, through the same retriever as the errors'
profile. It is the hedge a user picks without looking at the student: on a
crossover target, half the budget on each skill one of the students may lack
(the `static-50-50` arm of the crossover table).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from gaptune.agents.selectors.protocol import GapEvidence, Needs, PlainStrategy, parse_options


class SkillMixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skills: dict[str, PositiveInt] = Field(min_length=1)  # skill label -> weight of the budget


class SkillMix(PlainStrategy):
    name = "skill-mix"
    needs = Needs()

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = parse_options(self.name, SkillMixOptions, options)

    def gap_profile(self, evidence: GapEvidence) -> tuple[dict[str, int], str]:
        named = ", ".join(f"{skill} {weight}" for skill, weight in self.options.skills.items())
        return dict(self.options.skills), f"skills named in the config ({named}; static, errors ignored)"


STRATEGY = SkillMix
