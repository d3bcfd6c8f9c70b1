"""Turning a generation into steps and an answer, and deciding whether it is right.

Matching is exact after normalisation, with two forgiving cases users' models
need: multiple-choice answers may be given as the letter or the option text,
and numbers match numerically ("3" == "3.0" == "three").
"""

from __future__ import annotations

import re

from gaptune.data.sample import ANSWER_PREFIX, Sample
from gaptune.data.text import normalise

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}
_ANSWER_RE = re.compile(re.escape(ANSWER_PREFIX), re.IGNORECASE)
_LETTER_RE = re.compile(r"\(?([a-z])\)?[.:]?(?:\s+(.*))?")


def parse_output(output: str) -> tuple[list[str], str | None]:
    """Split "step; step; answer: X" into its steps and X (None when no answer was given).

    The last "answer:" wins, so a model that restates its answer is read at its final word.
    """
    matches = list(_ANSWER_RE.finditer(output))
    if not matches:
        reasoning, answer = output, None
    else:
        last = matches[-1]
        reasoning, answer = output[: last.start()], normalise(output[last.end():].split("\n")[0])
    steps = [part.strip() for part in reasoning.split(";") if part.strip()]
    return steps, answer


def _as_number(text: str) -> float | None:
    if text in _NUMBER_WORDS:
        return float(_NUMBER_WORDS[text])
    try:
        return float(text)
    except ValueError:
        return None


def _choice_letter(text: str, options: dict[str, str]) -> str | None:
    """The option letter that `text` names: "b", "(b)", "b." or "b. <option text>", or the option text itself."""
    match = _LETTER_RE.fullmatch(text)
    if match and match.group(1) in options:
        rest = match.group(2)
        if rest is None or normalise(rest) == options[match.group(1)]:
            return match.group(1)
    return next((letter for letter, option in options.items() if option == text), None)


def is_correct(answer: str | None, sample: Sample) -> bool:
    """Whether a parsed answer matches the sample's gold answer."""
    if answer is None:
        return False
    given, gold = normalise(answer), normalise(sample.answer)
    if given == gold:
        return True
    if sample.choices:
        options = {chr(ord("a") + i): normalise(choice) for i, choice in enumerate(sample.choices)}
        gold_letter = _choice_letter(gold, options)
        if gold_letter is not None and _choice_letter(given, options) == gold_letter:
            return True
    given_number, gold_number = _as_number(given), _as_number(gold)
    return given_number is not None and given_number == gold_number
