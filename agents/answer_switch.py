"""Mistake identification `answer-switch`: the step after which the teacher starts believing the wrong answer.

The student's steps are appended one at a time; after each prefix the teacher
scores the gold answer and the student's answer (log-probability as its
reply). The erroneous step is the first one after which the student's answer
leads by more than `delta` and keeps leading for `lambda` prefixes. The
research found this localised the wrong step best (65% correct vs 28% for
asking per step).
"""

from __future__ import annotations

from dataclasses import dataclass

from gaptune.agents.llm.backends import ChatBackend, Message
from gaptune.data.attempt import Attempt
from gaptune.data.records import Usage
from gaptune.data.sample import Sample


@dataclass(frozen=True)
class SwitchTrace:
    """Scores per prefix (index k = the first k steps shown) and the located step."""

    gold: list[float]
    student: list[float]
    wrong_step: int | None


def locate_switch(gold: list[float], student: list[float], *, delta: float, lam: int) -> int | None:
    """The 0-based step after which the student's answer overtakes the gold one and stays ahead.

    `gold[k]`/`student[k]` are scores after the first k steps (k = 0..n). Step
    i is the switch when the student's lead `student - gold` is at most `delta`
    before it (prefix i) and exceeds `delta` from prefix i+1 for `lam` prefixes
    (fewer when the steps run out: a switch at the last step still counts).
    None when the teacher never switches.
    """
    if len(gold) != len(student) or not gold:
        raise ValueError("gold and student scores must cover the same, non-empty list of prefixes")
    lead = [s - g for g, s in zip(gold, student, strict=True)]
    for i in range(len(lead) - 1):
        if lead[i] <= delta and all(lead[k] > delta for k in range(i + 1, min(i + 1 + lam, len(lead)))):
            return i
    return None


def prefix_messages(sample: Sample, steps: list[str]) -> list[Message]:
    """The scoring prompt for one prefix: the steps so far as the teacher's own reply, then "the answer is".

    Framing the steps as the teacher's own reasoning (an assistant turn to
    continue) is what makes a wrong step pull its belief towards the wrong answer.
    """
    reasoning = "".join(f"{step}. " for step in steps)
    return [
        {"role": "system", "content": "Reason step by step, then give the final answer as a single word or number."},
        {"role": "user", "content": f"Question: {sample.question_text()}"},
        {"role": "assistant", "content": f"{reasoning}So the answer is"},
    ]


def score_prefixes(backend: ChatBackend, sample: Sample, attempt: Attempt) -> tuple[list[float], list[float], Usage]:
    """Gold and student answer scores after each prefix of the student's steps."""
    if attempt.answer is None:
        raise ValueError(f"attempt on {sample.id!r} has no answer: answer-switch needs the student's answer")
    usage = Usage(model=backend.model)
    gold, student = [], []
    for k in range(len(attempt.steps) + 1):
        scores, call_usage = backend.answer_logprobs(prefix_messages(sample, attempt.steps[:k]),
                                                     [sample.answer, attempt.answer])
        usage = usage.plus(call_usage)
        gold.append(scores[0])
        student.append(scores[1])
    return gold, student, usage


def answer_switch(
    backend: ChatBackend, sample: Sample, attempt: Attempt, *, delta: float, lam: int,
) -> tuple[SwitchTrace, Usage]:
    """Score every prefix and apply the switch rule."""
    gold, student, usage = score_prefixes(backend, sample, attempt)
    return SwitchTrace(gold, student, locate_switch(gold, student, delta=delta, lam=lam)), usage
