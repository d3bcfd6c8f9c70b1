"""The `reader` teacher: reads the gold step *texts* and the student's steps, never their skill labels.

The `reference` teacher returns the gold step's skill label, which in the
built-in world is already the pool's skill vocabulary: diagnosis becomes an
identity map and says nothing about whether a teacher could find the gap. The
reader sees what a text-only teacher would see (the question, the gold
rationale as text, the student's steps), locates the first step that differs,
and says in its own words what that step does ("telling how many things of
one kind the image holds"). The gap-classification tool then has to map that
sentence onto the pool's vocabulary, and can get it wrong; the loop reports how
often it matched the world's true label (`diagnosis` in metrics.json).

`locate="random"` is the ablation of mistake identification: it names the
skill of a randomly drawn gold step instead of the first wrong one.
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Literal

from gaptune.agents.reference_critic import first_wrong_step
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique
from gaptune.data.sample import Sample
from gaptune.data.text import normalise

Locate = Literal["first-wrong", "random"]

# What a step does, read from its wording; the first pattern that matches wins.
# The phrases are plain English on purpose: none repeats a pool skill label.
_STEP_READINGS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bcount\b"), "telling how many objects of one kind the image holds"),
    (re.compile(r"\b(more than|fewer than|bigger than|smaller than|same as)\b"),
     "judging which of two values is larger, or whether two values match"),
    (re.compile(r"\b(left of|right of|above|below)\b"), "working out how two places in the grid lie to each other"),
    (re.compile(r"^colour at\b"), "naming the hue of the thing at a given place"),
    (re.compile(r"^shape at\b"), "naming the outline of the thing at a given place"),
    (re.compile(r"^size at\b"), "judging how large the thing at a given place is"),
    (re.compile(r"^(big|small) object at\b"), "judging how large things are to pick out the one of a given size"),
    (re.compile(r"^any\b"), "checking whether such a thing is present at all"),
    (re.compile(r"\bchange"), "noticing what is different between the two images"),
    (re.compile(r"\bat (top|middle|bottom|left|right)\b"), "finding where in the image a described object sits"),
)


def read_step(text: str) -> str:
    """What a gold step asks of the student, in words; an unrecognised step is quoted as it is."""
    normalised = normalise(text)
    for pattern, reading in _STEP_READINGS:
        if pattern.search(normalised):
            return reading
    return f"the reasoning step '{text}'"


class StepReaderTeacher:
    """Locates the wrong step by its text and describes the missing skill without reading skill labels."""

    def __init__(self, name: str = "reader", *, locate: Locate = "first-wrong") -> None:
        self.name = name
        self.where = "in-process: gold rationale step texts"
        self.locate = locate

    def critique(self, sample: Sample, attempt: Attempt) -> Critique:
        gold = sample.steps
        if not gold:
            raise ValueError(
                f"sample {sample.id!r} has no gold rationale steps: the reader teacher needs "
                "them; configure an LLM critic (teacher.critics) for such data"
            )
        if self.locate == "random":
            # Seeded by the case, so a resumed run draws the same step.
            seed = int(hashlib.sha256(sample.id.encode()).hexdigest()[:8], 16)
            index = random.Random(seed).randrange(len(gold))
            how = f"step {index + 1} drawn at random (ablation: no mistake identification)"
        else:
            index = first_wrong_step(sample, attempt)
            how = ""
        step = gold[min(index, len(gold) - 1)]
        written = attempt.steps[index] if index < len(attempt.steps) else None
        if how:
            explanation = how
        elif index < len(gold):
            explanation = f"step {index + 1} should read {step.text!r}; the student wrote {written or 'nothing'!r}"
        else:
            explanation = f"every step matches, yet the answer {attempt.answer!r} should be {sample.answer!r}"
        return Critique(sample_id=sample.id, teacher=self.name, method=f"reader/{self.locate}",
                        wrong_step=index, missing_skill=read_step(step.text), explanation=explanation)
