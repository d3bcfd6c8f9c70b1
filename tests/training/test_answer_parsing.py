"""Answer parsing: steps and answer from a generation, and forgiving-but-exact correctness."""

from __future__ import annotations

import pytest

from gaptune.data.sample import Sample
from gaptune.training.answer_parsing import is_correct, parse_output


def _sample(answer: str, choices: list[str] | None = None) -> Sample:
    return Sample(id="s", question="q?", answer=answer, choices=choices)


def test_steps_and_answer_are_split() -> None:
    assert parse_output("count red = 2; count blue = 1; 2 more than 1 = yes; answer: yes") == (
        ["count red = 2", "count blue = 1", "2 more than 1 = yes"], "yes")


def test_answer_is_normalised_and_ends_at_the_line() -> None:
    assert parse_output("Answer:  Top Left.\nextra words") == ([], "top left")


def test_last_answer_wins() -> None:
    steps, answer = parse_output("answer: no; wait, count red = 3; answer: yes")
    assert answer == "yes"
    assert steps == ["answer: no", "wait, count red = 3"]


def test_missing_answer_is_none_and_incorrect() -> None:
    steps, answer = parse_output("count red = 2; count blue = 1")
    assert (steps, answer) == (["count red = 2", "count blue = 1"], None)
    assert is_correct(None, _sample("yes")) is False
    assert is_correct(parse_output("answer:")[1], _sample("yes")) is False


@pytest.mark.parametrize("given", ["b", "(b)", "b.", "b. blue", "(b) blue", "B", "blue", "Blue."])
def test_multiple_choice_letters_and_text(given: str) -> None:
    assert is_correct(given, _sample("blue", ["red", "blue", "green"])) is True


@pytest.mark.parametrize("given", ["a", "(c)", "b. red", "d", "bl"])
def test_wrong_multiple_choice_answers(given: str) -> None:
    assert is_correct(given, _sample("blue", ["red", "blue", "green"])) is False


def test_gold_given_as_a_letter_matches_the_option_text() -> None:
    assert is_correct("blue", _sample("(b)", ["red", "blue"])) is True


def test_letters_mean_nothing_without_choices() -> None:
    assert is_correct("b", _sample("blue")) is False


@pytest.mark.parametrize("given", ["3", "3.0", "three", "Three.", "3.00"])
def test_numbers_match_numerically(given: str) -> None:
    assert is_correct(given, _sample("3")) is True


@pytest.mark.parametrize("given", ["4", "3.5", "four", "", "3 objects"])
def test_other_numbers_do_not_match(given: str) -> None:
    assert is_correct(given, _sample("3")) is False


def test_exact_text_after_normalisation() -> None:
    assert is_correct("  Top   LEFT! ", _sample("top left")) is True
    assert is_correct("top", _sample("top left")) is False
