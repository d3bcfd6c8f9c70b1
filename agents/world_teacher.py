"""Answer-switch on a model of the world: a teacher that needs the gold answer only, never a rationale.

The `reader` and `reference` critics diff the student's steps against gold
rationale steps, which users' tasks rarely have (and in the built-in world the
step texts name their skill, so that diff is an oracle in disguise, DESIGN.md
rule 13). This critic instead scores, with a stronger image-text model of the
same world, the gold answer and the student's answer after each prefix of the
student's own steps (image and question shown), and blames the step after which
the student's answer overtakes the gold one (`locate_switch`, the paper's rule).
The blamed step's own text is read into a skill description (`read_step`), so
nothing gold but the answer is used.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from gaptune.agents.answer_switch import locate_switch
from gaptune.agents.step_reader import read_step
from gaptune.agents.teacher_config import WorldBackend
from gaptune.data.attempt import Attempt
from gaptune.data.images import open_image
from gaptune.data.records import Critique, Usage
from gaptune.data.sample import ANSWER_PREFIX, STEP_SEPARATOR, Sample


class WorldScorer:
    """An image-text-to-text checkpoint that scores "answer: X" after the question, the image and some steps."""

    def __init__(self, config: WorldBackend) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_name = config.model
        try:
            self.processor = AutoProcessor.from_pretrained(config.model)
            self.model: Any = AutoModelForImageTextToText.from_pretrained(config.model)
            self.model.to(config.device)  # type: ignore[arg-type]  # transformers wrapper typing
        except OSError as error:
            raise ValueError(f"teacher world backend: cannot load {config.model!r}: expected a save_pretrained "
                             f"directory of an image-text-to-text model ({error})") from error
        self.model.eval()
        self._torch = torch
        self._lock = threading.Lock()

    def _prefix_text(self, sample: Sample, steps: list[str]) -> str:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.images]
        content.append({"type": "text", "text": sample.question_text()})
        prompt = self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                                    tokenize=False)
        reasoning = f" {STEP_SEPARATOR.join(steps)};" if steps else ""
        return f"{prompt}{reasoning} {ANSWER_PREFIX}"

    def answer_logprobs(self, sample: Sample, steps: list[str], answers: list[str]) -> list[float]:
        """Exact log P(" X" | image, question, steps, "answer:") for each answer X, summed over its tokens."""
        torch = self._torch
        prefix = self._prefix_text(sample, steps)
        images = [open_image(ref, sample_id=sample.id) for ref in sample.images]
        scores = []
        with self._lock, torch.inference_mode():
            for answer in answers:
                texts = [prefix, f"{prefix} {answer.strip()}"]
                encoded = [self.processor(text=[t], images=images or None, return_tensors="pt",
                                          add_special_tokens=False) for t in texts]
                short, full = encoded[0]["input_ids"][0], encoded[1]["input_ids"][0]
                if len(full) <= len(short) or not torch.equal(full[: len(short)], short):
                    raise ValueError(f"answer {answer!r} does not tokenise as a continuation of the prompt")
                batch = {k: v.to(self.model.device) for k, v in dict(encoded[1]).items()}
                logits = self.model(**batch).logits[0, len(short) - 1 : -1].float()
                target = full[len(short):].to(logits.device)
                scores.append(float(torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum()))
        return scores


class WorldTeacherCritic:
    """Answer-switch with a `WorldScorer`; needs the gold answer and the student's steps and answer, nothing else."""

    def __init__(self, name: str, scorer: WorldScorer, *, delta: float, lam: int) -> None:
        self.name = name
        self.where = f"world teacher {scorer.model_name!r} in-process"
        self.scorer = scorer
        self.delta = delta
        self.lam = lam

    def critique(self, sample: Sample, attempt: Attempt) -> Critique:
        if attempt.answer is None or not attempt.steps:
            raise ValueError(f"attempt on {sample.id!r} has no steps or no answer: answer-switch needs both")
        gold, student = [], []
        for k in range(len(attempt.steps) + 1):
            scores = self.scorer.answer_logprobs(sample, attempt.steps[:k], [sample.answer, attempt.answer])
            gold.append(scores[0])
            student.append(scores[1])
        switch = locate_switch(gold, student, delta=self.delta, lam=self.lam)
        # No switch: the gold answer stayed ahead after every step, so the last step, which
        # should have produced the answer, is blamed.
        blamed = len(attempt.steps) - 1 if switch is None else switch
        lead = ", ".join(f"{s - g:+.2f}" for g, s in zip(gold, student, strict=True))
        how = "no switch, last step blamed" if switch is None else f"switch after step {blamed + 1}"
        return Critique(sample_id=sample.id, teacher=self.name, method="answer-switch", wrong_step=blamed,
                        missing_skill=read_step(attempt.steps[blamed]),
                        explanation=f"student-answer lead per prefix: {lead} ({how})",
                        usage=Usage(calls=2 * len(gold), model=self.scorer.model_name))


def world_critic(config: WorldBackend, name: str, *, delta: float, lam: int) -> WorldTeacherCritic:
    if not (Path(config.model) / "config.json").is_file():
        raise ValueError(f"teacher world backend: {config.model!r} is not a save_pretrained directory (no config.json)")
    return WorldTeacherCritic(name, WorldScorer(config), delta=delta, lam=lam)
