"""Mistake identification `prompt`: ask the teacher for the first wrong step, with a schema.

The research found this weaker than answer-switch (28% vs 65% correct), but it
needs no log-probabilities, so it works with any chat endpoint.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gaptune.agents.llm.backends import ChatBackend
from gaptune.agents.llm.case_prompt import case_text, user_message
from gaptune.agents.llm.structured_output import schema_instructions, structured_call
from gaptune.agents.skill_analyst import SKILL_EXAMPLES, clean_skill
from gaptune.data.attempt import Attempt
from gaptune.data.records import Usage
from gaptune.data.sample import Sample


class StepVerdict(BaseModel):
    """The teacher's reply; `wrong_step` is 1-based as shown in the prompt."""

    model_config = ConfigDict(extra="ignore")

    wrong_step: int = Field(description="number of the first wrong step; one more than the last step "
                                        "if every step is right and only the final answer is wrong")
    missing_skill: str = Field(description="the one skill the student lacked there, a short label of 1-4 words")
    explanation: str = Field(default="", description="one sentence: what went wrong")

    @field_validator("wrong_step")
    @classmethod
    def _in_range(cls, value: int, info: ValidationInfo) -> int:
        steps = (info.context or {}).get("n_steps")
        if steps is not None and not 1 <= value <= steps + 1:
            raise ValueError(f"wrong_step must be between 1 and {steps + 1}")
        return value

    @field_validator("missing_skill")
    @classmethod
    def _short_label(cls, value: str) -> str:
        return clean_skill(value)


def locate_by_prompt(backend: ChatBackend, sample: Sample, attempt: Attempt) -> tuple[StepVerdict, Usage]:
    """One structured call naming the first wrong step (and a skill, used when no analyst is configured)."""
    prompt = (
        "You are a teacher checking a student's step-by-step answer to a visual question. "
        "The student's final answer is wrong.\n\n"
        f"{case_text(sample, attempt)}\n\n"
        "Find the FIRST step that is wrong and the one skill the student lacked there.\n\n"
        f"{SKILL_EXAMPLES}\n"
        + schema_instructions(StepVerdict, {"wrong_step": 1, "missing_skill": "counting",
                                            "explanation": "there are 3 red objects, not 2"})
    )
    messages = [user_message(prompt, sample, vision=backend.vision)]
    return structured_call(backend, messages, StepVerdict, context={"n_steps": len(attempt.steps)})
