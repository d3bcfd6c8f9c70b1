"""Skill analysis: name the one skill the student lacked at its wrong step (one per case per round).

In-context examples in the prompt show the expected granularity: a short,
reusable skill label ("counting"), not a restatement of the error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gaptune.agents.llm.backends import ChatBackend
from gaptune.agents.llm.case_prompt import case_text, user_message
from gaptune.agents.llm.structured_output import schema_instructions, structured_call
from gaptune.data.attempt import Attempt
from gaptune.data.records import Usage
from gaptune.data.sample import Sample
from gaptune.data.text import normalise

SKILL_EXAMPLES = """Examples of missing skills:
- Question "How many red objects are there?", student step "count red = 2", correct count 3 -> "counting"
- Question "Is the circle left of the square?", student step "circle at right, square at left,
  so left of = yes" -> "spatial relation"
- Question "What does the sign say?", student step "the sign says STOP" but it says SHOP -> "text reading"
- Question "Which bar is tallest?", student step "bar B is 40, bar C is 35" but C is 45 -> "chart reading"
"""


def clean_skill(value: str) -> str:
    """A skill label normalised for counting and voting: lower case, single spaces, no quotes."""
    skill = normalise(value)
    if not skill:
        raise ValueError("missing_skill is empty")
    if len(skill) > 60:
        raise ValueError("missing_skill must be a short label of a few words")
    return skill


class SkillAnalysis(BaseModel):
    model_config = ConfigDict(extra="ignore")

    missing_skill: str = Field(description="the one missing skill, a short label of 1-4 words")
    explanation: str = Field(default="", description="one sentence: why that step needed this skill")

    @field_validator("missing_skill")
    @classmethod
    def _short_label(cls, value: str) -> str:
        return clean_skill(value)


class SkillAnalyst:
    """Names the missing skill for a located wrong step."""

    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend
        self.name = backend.name

    def analyse(self, sample: Sample, attempt: Attempt, wrong_step: int | None) -> tuple[SkillAnalysis, Usage]:
        if wrong_step is None:
            where = "The wrong step is unknown."
        elif wrong_step < len(attempt.steps):
            where = f"The first wrong step is step {wrong_step + 1}."
        else:
            where = "All steps are right; only the final answer is wrong."
        prompt = (
            "You are a teacher diagnosing a student's visual reasoning.\n\n"
            f"{case_text(sample, attempt)}\n\n{where}\n"
            "Name the ONE skill the student lacked there.\n\n"
            f"{SKILL_EXAMPLES}\n"
            + schema_instructions(SkillAnalysis, {"missing_skill": "counting",
                                                  "explanation": "the student miscounted the red objects"})
        )
        messages = [user_message(prompt, sample, vision=self.backend.vision)]
        return structured_call(self.backend, messages, SkillAnalysis)
