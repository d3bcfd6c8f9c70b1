"""Batched evaluation: left-padded generation, parsing, accuracy overall, per skill and per family."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from pydantic import BaseModel

from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample
from gaptune.training.answer_parsing import is_correct, parse_output
from gaptune.training.batching import NO_DEMONSTRATIONS, generation_batch
from gaptune.training.families import Family, family_of


class Score(BaseModel):
    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


class Evaluation(BaseModel):
    """Accuracy of one model on one set of samples, with every attempt kept for the teacher."""

    overall: Score
    per_skill: dict[str, Score]
    per_family: dict[str, Score]
    attempts: list[Attempt]

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy


@torch.inference_mode()
def generate_outputs(
    model: Any,
    processor: Any,
    samples: Sequence[Sample],
    *,
    batch_size: int = 64,
    max_new_tokens: int = 64,
    demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    family: Family | None = None,
) -> list[str]:
    """Greedy generations in input order, `batch_size` prompts at a time (`family`: the model type's entry)."""
    family = family or family_of(model)
    outputs: list[str] = []
    device = next(model.parameters()).device
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
        batch = {k: v.to(device) for k, v in generation_batch(processor, chunk, demonstrations, family=family).items()}
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = generated[:, batch["input_ids"].shape[1] :]
        outputs.extend(text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True))
    return outputs


def score(samples: Sequence[Sample], outputs: Sequence[str]) -> Evaluation:
    """Parse each output and tally accuracy; a sample counts toward every skill it needs."""
    overall = Score()
    per_skill: dict[str, Score] = defaultdict(Score)
    per_family: dict[str, Score] = defaultdict(Score)
    attempts = []
    for sample, output in zip(samples, outputs, strict=True):
        steps, answer = parse_output(output)
        correct = is_correct(answer, sample)
        attempts.append(Attempt(sample_id=sample.id, output=output, steps=steps, answer=answer, correct=correct))
        for tally in (overall, *(per_skill[s] for s in sample.skills), per_family[sample.task or "?"]):
            tally.total += 1
            tally.correct += int(correct)
    return Evaluation(overall=overall, per_skill=dict(per_skill), per_family=dict(per_family), attempts=attempts)


def evaluate(model: Any, processor: Any, samples: Sequence[Sample], **generation: Any) -> Evaluation:
    return score(samples, generate_outputs(model, processor, samples, **generation))
