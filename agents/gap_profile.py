"""The evidence a round's critiques give for a gap profile: the blamed step as written, its gold label, a score.

The profile itself is each selection strategy's (agents/selectors): the
error-driven one reads the errors, the static one the target's gold steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample


def wrong_step_text(attempt: Attempt, wrong_step: int | None) -> str:
    """The student's wrong step as written; its whole output when the step is missing."""
    if wrong_step is not None and wrong_step < len(attempt.steps):
        return attempt.steps[wrong_step]
    return attempt.output or "(no output)"


def profile_gap(gaps: Mapping[str, int], attempt: Attempt, wrong_step: int | None, skill_gap: str) -> str:
    """The gap of a round's profile that one critiqued case counts toward: its wrong step as written where the
    profile is of step texts, its classified skill where it is of skills, "" where the profile ignores the errors."""
    step = wrong_step_text(attempt, wrong_step)
    if step in gaps:
        return step
    return skill_gap if skill_gap in gaps else ""


def true_skill(sample: Sample, wrong_step: int | None) -> str | None:
    """The gold label of the step a critique blamed, when the data has one: kept to score diagnosis, never shown."""
    if not sample.steps or wrong_step is None:
        return None
    return sample.steps[min(wrong_step, len(sample.steps) - 1)].skill


def diagnosis_score(blamed: Sequence[tuple[str, str | None]], gap_of_skill: Mapping[str, str]) -> dict[str, int]:
    """How many (missing skill, true label) pairs map onto their own true label; pairs without a label are not scored."""
    scored = [(skill, truth) for skill, truth in blamed if truth]
    return {"matched": sum(gap_of_skill.get(skill) == truth for skill, truth in scored), "total": len(scored)}
