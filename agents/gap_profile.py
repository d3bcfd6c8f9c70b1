"""What drives retrieval in a round: the student's errors, or (for the static arms) the target's gold steps.

The profile maps query keys to weights; the retriever splits the budget by
weight and queries the pool once per key. Keys are canonical skill labels
(the method) or raw step texts (`retrieval.query: step-text`). The static
arms build the same kind of profile from the target's gold steps instead of
the errors, so error-driven and static runs differ only in where the profile
comes from.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from gaptune.agents.baselines import target_skill_counts, target_step_counts
from gaptune.agents.retriever import Query
from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample


def wrong_step_text(attempt: Attempt, wrong_step: int | None) -> str:
    """The student's wrong step as written; its whole output when the step is missing."""
    if wrong_step is not None and wrong_step < len(attempt.steps):
        return attempt.steps[wrong_step]
    return attempt.output or "(no output)"


def gap_profile(
    *,
    static: bool,
    query: Query,
    error_gaps: Mapping[str, int],
    wrong_steps: Sequence[tuple[Attempt, int | None]],
    target: Sequence[Sample],
) -> tuple[dict[str, int], str]:
    """The round's profile and a phrase naming its source (for the trace).

    `error_gaps` are the classified errors; `wrong_steps` each wrong attempt
    with the step its critique blamed; `target` the probe split (gold steps).
    """
    if static and query == "step-text":
        return target_step_counts(target), "target gold step texts (static, errors ignored)"
    if static:
        return target_skill_counts(target), "target gold skills (static, errors ignored)"
    if query == "step-text":
        texts = Counter(wrong_step_text(attempt, step) for attempt, step in wrong_steps)
        return dict(texts), "wrong step texts (ablation: no skill analysis)"
    return dict(error_gaps), "errors"


def true_skill(sample: Sample, wrong_step: int | None) -> str | None:
    """The gold label of the step a critique blamed, when the data has one: kept to score diagnosis, never shown."""
    if not sample.steps or wrong_step is None:
        return None
    return sample.steps[min(wrong_step, len(sample.steps) - 1)].skill


def diagnosis_score(blamed: Sequence[tuple[str, str | None]], gap_of_skill: Mapping[str, str]) -> dict[str, int]:
    """How many (missing skill, true label) pairs map onto their own true label; pairs without a label are not scored."""
    scored = [(skill, truth) for skill, truth in blamed if truth]
    return {"matched": sum(gap_of_skill.get(skill) == truth for skill, truth in scored), "total": len(scored)}
