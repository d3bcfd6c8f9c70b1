"""The one record every stage exchanges: a question about one or more images.

Pool rows, target-task rows and the built-in world's rows all become `Sample`s,
so the teacher, the retriever and the trainer never care where data came from.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RationaleStep(BaseModel):
    """One step of a gold rationale, labelled with the skill it exercises."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str = Field(min_length=1)
    skill: str = Field(min_length=1)


class Sample(BaseModel):
    """A visual question with its answer.

    `images` holds references, never pixels: file paths, or `world://` refs
    that the built-in world renders on demand (see `gaptune.data.images`).
    `steps` is the gold rationale when the data has one; `skills` is what the
    sample teaches (from the data, or written by the pool annotator).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    images: list[str] = Field(default_factory=list)
    question: str = Field(min_length=1)
    answer: str
    choices: list[str] | None = None
    steps: list[RationaleStep] | None = None
    skills: list[str] = Field(default_factory=list)
    task: str = ""
    source: str = ""

    @field_validator("choices")
    @classmethod
    def _choices_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(value) < 2:
            raise ValueError("a multiple-choice sample needs at least two choices")
        return value

    def question_text(self) -> str:
        """The question as every prompt shows it, student's and teacher's: "question Options: a, b."."""
        if not self.choices:
            return self.question
        return f"{self.question} Options: {', '.join(self.choices)}."

    def target_text(self) -> str:
        """What the student is trained to write: its reasoning steps, then the answer."""
        return format_reasoning([step.text for step in self.steps or []], self.answer)


ANSWER_PREFIX = "answer:"
STEP_SEPARATOR = "; "


def format_reasoning(steps: list[str], answer: str) -> str:
    """Render steps and answer in the student's output format: "step; step; answer: X"."""
    return STEP_SEPARATOR.join([*steps, f"{ANSWER_PREFIX} {answer}"])
