"""Teacher-forced step accuracy: can the student write gold step k when handed gold steps 0..k-1?

Free generation shows only the first step a student gets wrong; everything after
it is conditioned on its own mistake. Handing it the gold prefix measures every
step of the target on its own, which is what tells a student that cannot find
the big object from one that cannot count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from gaptune.data.sample import STEP_SEPARATOR, Sample
from gaptune.data.text import normalise
from gaptune.training.answer_parsing import is_correct, parse_output
from gaptune.training.prompting import images_for, prompt_text

ANSWER_STEP = "answer"


def _forced_prompt(processor: Any, sample: Sample, k: int) -> str:
    """The prompt with the first k gold steps already written, exactly as training texts continue it."""
    prompt = prompt_text(processor, sample)
    gold = [step.text for step in sample.steps or []]
    return prompt if k == 0 else f"{prompt} {STEP_SEPARATOR.join(gold[:k])};"


def _judge(sample: Sample, k: int, written: str) -> bool:
    gold = sample.steps or []
    if k == len(gold):
        return is_correct(parse_output(written)[1], sample)
    return normalise(written.split(";")[0]) == normalise(gold[k].text)


@torch.inference_mode()
def forced_step_correct(model: Any, processor: Any, samples: Sequence[Sample], *, batch_size: int = 64,
                        max_new_tokens: int = 24) -> list[list[bool]]:
    """Per sample: one flag per gold step, then one for the answer (given every gold step)."""
    queries = [(sample, k) for sample in samples for k in range(len(sample.steps or []) + 1)]
    device = next(model.parameters()).device
    processor.tokenizer.padding_side = "left"
    flags: list[bool] = []
    for start in range(0, len(queries), batch_size):
        chunk = queries[start : start + batch_size]
        encoded = processor(text=[_forced_prompt(processor, s, k) for s, k in chunk],
                            images=[image for s, _ in chunk for image in images_for(s)],
                            padding=True, return_tensors="pt", add_special_tokens=False)
        batch = {name: value.to(device) for name, value in dict(encoded).items()}
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        texts = processor.batch_decode(generated[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        flags += [_judge(s, k, text.strip()) for (s, k), text in zip(chunk, texts, strict=True)]
    result, position = [], 0
    for sample in samples:
        width = len(sample.steps or []) + 1
        result.append(flags[position : position + width])
        position += width
    return result
