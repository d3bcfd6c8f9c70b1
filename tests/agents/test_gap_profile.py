"""Which profile drives retrieval: errors or gold steps, as skill labels or as step texts."""

from __future__ import annotations

import pytest

from gaptune.agents.gap_profile import wrong_step_text
from gaptune.agents.retriever import split_budget
from gaptune.agents.selectors.error_driven import ErrorDriven
from gaptune.agents.selectors.protocol import GapEvidence, GapSelector
from gaptune.agents.selectors.registry import build_selector
from gaptune.agents.selectors.task_skills import TaskSkills
from gaptune.data.attempt import Attempt
from gaptune.data.world.world import task_split
from gaptune.training.answer_parsing import parse_output


def _attempt(output: str) -> Attempt:
    steps, answer = parse_output(output)
    return Attempt(sample_id="x", output=output, steps=steps, answer=answer, correct=False)


TARGET = task_split("compare-counts", "probe", size=10)
WRONG = [(_attempt("count red = 2; count blue = 1; 2 more than 1 = yes; answer: yes"), 0),
         (_attempt("count red = 2; answer: no"), 0),
         (_attempt("answer: no"), 0)]


ERROR_DRIVEN, TASK_SKILLS = ErrorDriven({}), TaskSkills({})


def test_error_profiles_come_from_the_errors() -> None:
    errors = {"counting": 2, "comparison": 1}
    assert ERROR_DRIVEN.gap_profile(GapEvidence(query="skill", error_gaps=errors, wrong_steps=WRONG, target=TARGET)) == (
        errors, "errors")
    texts, source = ERROR_DRIVEN.gap_profile(GapEvidence(query="step-text", error_gaps=errors, wrong_steps=WRONG,
                                                         target=TARGET))
    assert texts == {"count red = 2": 2, "answer: no": 1} and source.startswith("wrong step texts")


def test_static_profiles_ignore_the_errors() -> None:
    for query in ("skill", "step-text"):
        first = TASK_SKILLS.gap_profile(GapEvidence(query=query, error_gaps={"counting": 9}, wrong_steps=WRONG,
                                                    target=TARGET))
        second = TASK_SKILLS.gap_profile(GapEvidence(query=query, error_gaps={}, wrong_steps=[], target=TARGET))
        assert first == second and first[1].startswith("target gold")
    skills, _ = TASK_SKILLS.gap_profile(GapEvidence(query="skill", error_gaps={}, wrong_steps=[], target=TARGET))
    assert skills == {"counting": 20, "comparison": 10}


def test_wrong_step_text_falls_back_to_the_output() -> None:
    attempt = _attempt("count red = 2; answer: no")
    assert wrong_step_text(attempt, 0) == "count red = 2"
    assert wrong_step_text(attempt, 5) == "count red = 2; answer: no"
    assert wrong_step_text(_attempt(""), None) == "(no output)"


def test_skill_mix_spends_the_named_proportions_whatever_the_errors() -> None:
    mix = build_selector("skill-mix", {"skills": {"size": 1, "counting": 1}})
    for errors in ({"counting": 9}, {}):
        profile, source = mix.gap_profile(  # type: ignore[attr-defined]
            GapEvidence(query="skill", error_gaps=errors, wrong_steps=WRONG, target=TARGET))
        assert profile == {"size": 1, "counting": 1} and "static" in source
    assert split_budget(profile, 800) == {"size": 400, "counting": 400}
    assert isinstance(mix, GapSelector) and mix.needs.errors is False


@pytest.mark.parametrize("options", [{}, {"skills": {}}, {"skills": {"size": 0}}, {"skills": {"size": 1}, "x": 1}])
def test_skill_mix_refuses_options_it_cannot_spend(options: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="selector_options"):
        build_selector("skill-mix", options)
