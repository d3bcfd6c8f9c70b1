"""`task-skills`, the static arm: the target's gold steps are the profile, the student's errors are ignored.

Its profile goes through the same retriever as the errors' profile, so the
two arms differ only in where the profile comes from; it asks whether the
errors add anything over knowing the task.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from gaptune.agents.selectors.protocol import GapEvidence, Needs, PlainStrategy
from gaptune.data.sample import RationaleStep, Sample


def _gold_step_counts(target: Iterable[Sample], key: Callable[[RationaleStep], str]) -> dict[str, int]:
    counts = Counter(key(step) for sample in target for step in sample.steps or [])
    if not counts:
        raise ValueError("task-skills needs target samples with gold rationale steps; none of them has any")
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def target_skill_counts(target: Iterable[Sample]) -> dict[str, int]:
    """How many gold rationale steps of the target samples (e.g. the probe split) exercise each skill."""
    return _gold_step_counts(target, lambda step: step.skill)


def target_step_counts(target: Iterable[Sample]) -> dict[str, int]:
    """How often each gold rationale step text occurs in the target samples: the static profile for step-text queries.

    The control for retrieving with the student's wrong step texts: the same
    granularity of query, from the task's gold steps instead of the errors.
    """
    return _gold_step_counts(target, lambda step: step.text)


class TaskSkills(PlainStrategy):
    name = "task-skills"
    needs = Needs(gold_steps=True)

    def gap_profile(self, evidence: GapEvidence) -> tuple[dict[str, int], str]:
        if evidence.query == "step-text":
            return target_step_counts(evidence.target), "target gold step texts (static, errors ignored)"
        return target_skill_counts(evidence.target), "target gold skills (static, errors ignored)"


STRATEGY = TaskSkills
