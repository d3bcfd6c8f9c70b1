"""The `reference` teacher: exact and free wherever the data has gold rationale steps.

It walks the student's steps alongside the gold ones; the first step that
differs (after normalisation) is the error and the gold step's skill is the
missing one. That is the ground truth an LLM teacher approximates.
"""

from __future__ import annotations

from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique
from gaptune.data.sample import Sample
from gaptune.data.text import normalise

FINAL_ANSWER_SKILL = "answer formatting"


def first_wrong_step(sample: Sample, attempt: Attempt) -> int:
    """Index of the first student step that differs from the gold text; len(gold) when only the answer is wrong."""
    gold = sample.steps or []
    for index, gold_step in enumerate(gold):
        written = attempt.steps[index] if index < len(attempt.steps) else None
        if written is None or normalise(written) != normalise(gold_step.text):
            return index
    return len(gold)


class ReferenceTeacher:
    """Compares the student's steps with the sample's gold rationale."""

    name = "reference"
    where = "in-process: gold rationale steps"

    def critique(self, sample: Sample, attempt: Attempt) -> Critique:
        if not sample.steps:
            raise ValueError(
                f"sample {sample.id!r} has no gold rationale steps: the reference teacher needs "
                "them; configure an LLM critic (teacher.critics) for such data"
            )
        gold = sample.steps
        index = first_wrong_step(sample, attempt)
        if index < len(gold):
            student_step = attempt.steps[index] if index < len(attempt.steps) else None
            written = "nothing" if student_step is None else repr(student_step)
            return Critique(
                sample_id=sample.id,
                teacher=self.name,
                method="reference",
                wrong_step=index,
                missing_skill=gold[index].skill,
                explanation=f"step {index + 1} should be {gold[index].text!r}, the student wrote {written}",
            )
        last_skill = gold[-1].skill
        return Critique(
            sample_id=sample.id,
            teacher=self.name,
            method="reference",
            wrong_step=len(gold),
            missing_skill=last_skill if attempt.answer is not None else FINAL_ANSWER_SKILL,
            explanation=(
                f"all {len(gold)} steps match the gold rationale but the answer "
                f"{attempt.answer!r} should be {sample.answer!r}"
            ),
        )
