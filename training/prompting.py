"""How a sample becomes the student's input: chat messages, prompt text, images.

One function builds the messages for every model; each model's own chat
template (in its processor) turns them into text. The instruction rides in a
system message, so models whose templates use one learn the "step; step;
answer: X" format from it, and the tiny student's template simply drops it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from gaptune.data.images import open_image
from gaptune.data.sample import Sample

INSTRUCTION = (
    "Answer the question about the image(s). Reason step by step: write each step, "
    "separate steps with '; ', and finish with 'answer: <answer>'."
)


def _user_turn(sample: Sample) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.images]
    content.append({"type": "text", "text": sample.question_text()})
    return {"role": "user", "content": content}


def messages_for(sample: Sample, demonstrations: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """System instruction, then each demonstration as a solved turn, then the question."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": [{"type": "text", "text": INSTRUCTION}]}]
    for demo in demonstrations:
        messages.append(_user_turn(demo))
        messages.append({"role": "assistant", "content": [{"type": "text", "text": demo.target_text()}]})
    messages.append(_user_turn(sample))
    return messages


def prompt_text(processor: Any, sample: Sample, demonstrations: Sequence[Sample] = ()) -> str:
    return processor.apply_chat_template(
        messages_for(sample, demonstrations), add_generation_prompt=True, tokenize=False
    )


def answered_text(processor: Any, sample: Sample, demonstrations: Sequence[Sample] = ()) -> str:
    """The same conversation closed by the sample's gold answer turn: what training texts are cut from."""
    messages = messages_for(sample, demonstrations)
    messages.append({"role": "assistant", "content": [{"type": "text", "text": sample.target_text()}]})
    return processor.apply_chat_template(messages, tokenize=False)


def images_for(sample: Sample, demonstrations: Sequence[Sample] = ()) -> list[Image.Image]:
    """The images in prompt order: the demonstrations' first, then the sample's."""
    return [open_image(ref, sample_id=s.id) for s in (*demonstrations, sample) for ref in s.images]
