"""Batches for generation (padded on the family's side) and for training (answer-only labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gaptune.data.errors import UserError
from gaptune.data.sample import Sample
from gaptune.training.families import Family
from gaptune.training.prompting import answered_text, images_for, prompt_text

IGNORE_INDEX = -100
NO_DEMONSTRATIONS: Mapping[str, Sequence[Sample]] = {}


def _encode(processor: Any, texts: list[str], images: list[list[Any]]) -> dict[str, torch.Tensor]:
    """Texts with their images, one list per text (nested: what every family's processor reads unambiguously)."""
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt", "add_special_tokens": False}
    if any(images):
        kwargs["images"] = images
    return dict(processor(**kwargs))


class ChatTemplateError(UserError, ValueError):
    """The student's chat template renders a conversation in a way answer-only training cannot use."""


def generation_batch(
    processor: Any,
    samples: Sequence[Sample],
    demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    *,
    family: Family,
) -> dict[str, torch.Tensor]:
    """Prompts padded on the family's side: left for decoder-only models, so every row generates from one position."""
    processor.tokenizer.padding_side = family.padding_side
    texts = [prompt_text(processor, s, demonstrations.get(s.id, ())) for s in samples]
    images = [images_for(s, demonstrations.get(s.id, ())) for s in samples]
    return _encode(processor, texts, images)


def _completion(processor: Any, sample: Sample, prompt: str, demonstrations: Sequence[Sample], family: Family) -> str:
    """The answer as the model's own template renders the assistant turn, ending at the family's end of turn.

    What the template puts after the end of turn (Qwen's newline) is not
    trained on; a template that does not close the turn (LLaVA-1.5's ends it
    with a space) gets the end of turn appended, so the model learns to stop.
    """
    full = answered_text(processor, sample, demonstrations)
    if not full.startswith(prompt):
        raise ChatTemplateError(
            "the student's chat template renders a prompt that is not the start of the same conversation with "
            f"its answer (prompt ends {prompt[-40:]!r}, answered conversation there reads "
            f"{full[len(prompt) - 40 : len(prompt)]!r}); answer-only labels need it to be"
        )
    end = family.end_of_turn or processor.tokenizer.eos_token or ""
    completion = full[len(prompt):]
    cut = completion.find(end) if end else -1
    return completion[: cut + len(end)] if cut >= 0 else completion.rstrip() + end


def _training_texts(
    processor: Any, samples: Sequence[Sample], demonstrations: Mapping[str, Sequence[Sample]], family: Family
) -> tuple[list[str], list[str]]:
    """Prompts, and the full texts the model trains on: prompt + the template's answer turn."""
    prompts = [prompt_text(processor, s, demonstrations.get(s.id, ())) for s in samples]
    return prompts, [p + _completion(processor, s, p, demonstrations.get(s.id, ()), family)
                     for p, s in zip(prompts, samples, strict=True)]


def training_batch(
    processor: Any,
    samples: Sequence[Sample],
    demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    *,
    family: Family,
) -> dict[str, torch.Tensor]:
    """Prompt + the answer turn; the loss sees only the answer's tokens and its end of turn.

    The prompt length is measured by encoding the prompts alone with the same
    images, so each processor's own image-placeholder expansion (fixed for
    LLaVA, size-dependent for Qwen2-VL) is counted the way it really happens.
    """
    processor.tokenizer.padding_side = "right"
    prompts, texts = _training_texts(processor, samples, demonstrations, family)
    images = [images_for(s, demonstrations.get(s.id, ())) for s in samples]
    batch = _encode(processor, texts, images)
    prompt_kwargs: dict[str, Any] = {"text": prompts, "add_special_tokens": False}
    if any(images):
        prompt_kwargs["images"] = images
    prompt_ids = processor(**prompt_kwargs)["input_ids"]
    labels = batch["input_ids"].clone()
    for row, ids in enumerate(prompt_ids):
        labels[row, : len(ids)] = IGNORE_INDEX
    labels[batch["attention_mask"] == 0] = IGNORE_INDEX
    batch["labels"] = labels
    return batch


def training_lengths(
    processor: Any,
    samples: Sequence[Sample],
    demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    *,
    family: Family,
) -> list[int]:
    """Each sample's length in a training batch, padding excluded: what length bucketing sorts by.

    The texts are tokenized without their images (a placeholder counts one
    token) in one fast call; each image then adds what the processor expands
    a placeholder into, measured once on the first sample with images. That
    count is fixed for LLaVA; where it depends on the image size (Qwen2-VL)
    it is an estimate, which bucketing tolerates: it only needs the order
    roughly right.
    """
    _, texts = _training_texts(processor, samples, demonstrations, family)
    counts = [len(ids) for ids in processor.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    images = [len(s.images) + sum(len(d.images) for d in demonstrations.get(s.id, ())) for s in samples]
    first = next((row for row, n in enumerate(images) if n), None)
    if first is None:
        return counts
    sample = samples[first]
    expanded = _encode(processor, [texts[first]], [images_for(sample, demonstrations.get(sample.id, ()))])
    per_image = (expanded["input_ids"].shape[1] - counts[first]) / images[first]
    return [count + round(n * per_image) for count, n in zip(counts, images, strict=True)]
