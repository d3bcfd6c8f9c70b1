"""How a wrong case is shown to an LLM teacher: question, gold answer, the student's numbered steps.

Vision-capable teachers also get the images (as data URLs, so no file server
is needed); text-only teachers get the text alone.
"""

from __future__ import annotations

import base64
import io

from gaptune.agents.llm.backends import Message
from gaptune.data.attempt import Attempt
from gaptune.data.images import open_image
from gaptune.data.sample import Sample


def case_text(sample: Sample, attempt: Attempt) -> str:
    """The case as text, steps numbered from 1 (weak models count from 1 more reliably)."""
    steps = "\n".join(f"{i}. {step}" for i, step in enumerate(attempt.steps, start=1)) or "(no steps)"
    return (
        f"Question: {sample.question_text()}\n"
        f"Correct answer: {sample.answer}\n"
        f"Student's reasoning steps:\n{steps}\n"
        f"Student's final answer: {attempt.answer if attempt.answer is not None else '(none)'}"
    )


def image_parts(sample: Sample) -> list[dict[str, object]]:
    """The sample's images as OpenAI `image_url` content parts."""
    parts: list[dict[str, object]] = []
    for ref in sample.images:
        buffer = io.BytesIO()
        open_image(ref, sample_id=sample.id).save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        parts.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}})
    return parts


def user_message(text: str, sample: Sample, *, vision: bool) -> Message:
    if not vision or not sample.images:
        return {"role": "user", "content": text}
    return {"role": "user", "content": [*image_parts(sample), {"type": "text", "text": text}]}
