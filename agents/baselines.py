"""The comparison arms, one flag away from the retriever and returning the same `Selection`.

`random` is the paper's main comparison (same budget, no targeting); `full`
is all pool data; `task-skills` knows the target task's skills from its gold
rationales but ignores the student's errors (its profile goes through the
same retriever), which asks whether the errors add anything over knowing the
task; `fixed` replays a given list (the ceiling's target samples, or another
student's selection for the swap test).
"""

from __future__ import annotations

import random as random_module
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from gaptune.agents.retriever import Selection, SelectionItem
from gaptune.data.sample import RationaleStep, Sample


def random_selection(pool_ids: Sequence[str], budget: int, used: Iterable[str] = (), *, seed: int) -> Selection:
    """`budget` ids drawn uniformly from the pool minus `used`; the same seed gives the same draw."""
    excluded = set(used)
    eligible = [sample_id for sample_id in pool_ids if sample_id not in excluded]
    drawn = random_module.Random(seed).sample(eligible, min(budget, len(eligible)))
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method="random", score=0.0, rank=rank)
             for rank, sample_id in enumerate(drawn, start=1)]
    return Selection(strategy="random", budget=budget, allocation={}, items=items,
                     shortfall={"": budget - len(items)} if len(items) < budget else {})


def full_selection(pool_ids: Sequence[str], used: Iterable[str] = ()) -> Selection:
    """Every pool sample not used yet, in pool order."""
    excluded = set(used)
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method="full", score=0.0, rank=rank)
             for rank, sample_id in enumerate((s for s in pool_ids if s not in excluded), start=1)]
    return Selection(strategy="full", budget=len(items), allocation={}, items=items)


def _gold_step_counts(target: Iterable[Sample], key: Callable[[RationaleStep], str]) -> dict[str, int]:
    counts = Counter(key(step) for sample in target for step in sample.steps or [])
    if not counts:
        raise ValueError("task-skills needs target samples with gold rationale steps; none of them has any")
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def target_skill_counts(target: Iterable[Sample]) -> dict[str, int]:
    """How many gold rationale steps of the target samples (e.g. the probe split) exercise each skill.

    This is the static arm's gap profile: fed to the same retriever as the
    student's error profile, so the two arms differ only in where the profile
    comes from (the task's gold steps, or the student's errors).
    """
    return _gold_step_counts(target, lambda step: step.skill)


def target_step_counts(target: Iterable[Sample]) -> dict[str, int]:
    """How often each gold rationale step text occurs in the target samples: the static profile for step-text queries.

    The control for retrieving with the student's wrong step texts: the same
    granularity of query, from the task's gold steps instead of the errors.
    """
    return _gold_step_counts(target, lambda step: step.text)


def fixed_selection(ids: Sequence[str], budget: int, used: Iterable[str] = (), *, strategy: str) -> Selection:
    """The next `budget` unused ids of a given list, in its order (the ceiling's target samples, a swapped selection)."""
    excluded = set(used)
    chosen = [sample_id for sample_id in ids if sample_id not in excluded][:budget]
    items = [SelectionItem(sample_id=sample_id, gap="", query="", method=strategy, score=0.0, rank=rank)
             for rank, sample_id in enumerate(chosen, start=1)]
    return Selection(strategy=strategy, budget=budget, allocation={}, items=items,
                     shortfall={"": budget - len(items)} if len(items) < budget else {})
