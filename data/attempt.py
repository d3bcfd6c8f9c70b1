"""What the student wrote for one sample, parsed into steps and an answer."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Attempt(BaseModel):
    """One student generation. `answer` is None when the output had no "answer:" part."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    output: str
    steps: list[str]
    answer: str | None
    correct: bool
