"""Batches for generation (left-padded prompts) and for training (answer-only labels)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from gaptune.data.sample import Sample
from gaptune.training.prompting import images_for, prompt_text

IGNORE_INDEX = -100
NO_DEMONSTRATIONS: Mapping[str, Sequence[Sample]] = {}


def _encode(processor: Any, texts: list[str], images: list[Any]) -> dict[str, torch.Tensor]:
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt", "add_special_tokens": False}
    if images:
        kwargs["images"] = images
    return dict(processor(**kwargs))


def generation_batch(
    processor: Any, samples: Sequence[Sample], demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS
) -> dict[str, torch.Tensor]:
    """Left-padded prompts, so every row's generation starts at the same position."""
    processor.tokenizer.padding_side = "left"
    texts = [prompt_text(processor, s, demonstrations.get(s.id, ())) for s in samples]
    images = [image for s in samples for image in images_for(s, demonstrations.get(s.id, ()))]
    return _encode(processor, texts, images)


def training_batch(
    processor: Any, samples: Sequence[Sample], demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS
) -> dict[str, torch.Tensor]:
    """Prompt + target + end-of-sequence; the loss sees only the target tokens.

    The prompt length is measured by encoding the prompts alone with the same
    images, so each processor's own image-placeholder expansion (fixed for
    LLaVA, size-dependent for Qwen2-VL) is counted the way it really happens.
    """
    processor.tokenizer.padding_side = "right"
    eos = processor.tokenizer.eos_token or ""
    prompts = [prompt_text(processor, s, demonstrations.get(s.id, ())) for s in samples]
    texts = [p + " " + s.target_text() + eos for p, s in zip(prompts, samples)]
    images = [image for s in samples for image in images_for(s, demonstrations.get(s.id, ()))]
    batch = _encode(processor, texts, images)
    prompt_kwargs: dict[str, Any] = {"text": prompts, "add_special_tokens": False}
    if images:
        prompt_kwargs["images"] = images
    prompt_ids = processor(**prompt_kwargs)["input_ids"]
    labels = batch["input_ids"].clone()
    for row, ids in enumerate(prompt_ids):
        labels[row, : len(ids)] = IGNORE_INDEX
    labels[batch["attention_mask"] == 0] = IGNORE_INDEX
    batch["labels"] = labels
    return batch
