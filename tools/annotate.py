"""The `annotate_sample` tool: records the skills one pool sample teaches, validated and normalised.

An annotator model "calls" it by replying with its arguments as JSON (local
servers often ignore native tool calling, so the agent validates the reply
against `AnnotateSampleArgs` itself and then invokes the tool). The tool makes
labels comparable: lower case, single spaces, duplicates dropped.
"""

from __future__ import annotations

from langchain_core.tools import StructuredTool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gaptune.data.text import normalise

MAX_SKILLS = 5


class AnnotateSampleArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sample_id: str = Field(min_length=1, description="the id of the annotated sample")
    skills: list[str] = Field(
        min_length=1, max_length=MAX_SKILLS,
        description=f"1-{MAX_SKILLS} skills the sample teaches, short labels of 1-4 words (e.g. counting)",
    )

    @field_validator("skills")
    @classmethod
    def _short_labels(cls, values: list[str]) -> list[str]:
        cleaned = [normalise(value) for value in values]
        if any(not value or len(value) > 60 for value in cleaned):
            raise ValueError("each skill must be a short, non-empty label of a few words")
        return list(dict.fromkeys(cleaned))


def _record(sample_id: str, skills: list[str]) -> dict[str, object]:
    return {"sample_id": sample_id, "skills": skills}


annotate_sample = StructuredTool.from_function(
    func=_record, name="annotate_sample", args_schema=AnnotateSampleArgs,
    description="Record the skills a pool sample teaches (normalised, deduplicated).",
)
