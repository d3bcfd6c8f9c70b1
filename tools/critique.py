"""The critique: which step of the student's reasoning went wrong and which skill was missing."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Critique(BaseModel):
    """A teacher's verdict on one wrong attempt.

    `wrong_step` indexes the student's steps (0-based); it equals `len(steps)`
    when every step was right and only the final answer went wrong, and is
    None when the teacher could not locate the error.
    """

    model_config = ConfigDict(extra="forbid")

    sample_id: str
    teacher: str
    method: str
    wrong_step: int | None
    missing_skill: str = Field(min_length=1)
    explanation: str = ""
