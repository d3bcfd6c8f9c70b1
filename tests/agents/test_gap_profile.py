"""Which profile drives retrieval: errors or gold steps, as skill labels or as step texts."""

from __future__ import annotations

from gaptune.agents.gap_profile import wrong_step_text
from gaptune.agents.selectors.error_driven import ErrorDriven
from gaptune.agents.selectors.protocol import GapEvidence
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
