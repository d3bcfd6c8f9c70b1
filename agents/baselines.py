"""The comparison arms, one flag away from the retriever and returning the same `Selection`.

`random` is the paper's main comparison (same budget, no targeting); `full`
is all pool data; `task-skills` knows the target task's skills from its gold
rationales but ignores the student's errors, which asks whether the errors
add anything over knowing the task.
"""

from __future__ import annotations

import random as random_module
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from gaptune.agents.retriever import Selection, SelectionItem
from gaptune.data.sample import Sample


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


def target_skill_weights(target: Iterable[Sample]) -> dict[str, float]:
    """Each skill's share of the gold rationale steps of the target samples (e.g. the probe split)."""
    counts = Counter(step.skill for sample in target for step in sample.steps or [])
    total = sum(counts.values())
    if total == 0:
        raise ValueError("task-skills needs target samples with gold rationale steps; none of them has any")
    return {skill: count / total for skill, count in counts.items()}


def task_skills_selection(
    pool_skills: Mapping[str, Sequence[str]],
    target: Iterable[Sample],
    budget: int,
    used: Iterable[str] = (),
    *,
    seed: int,
) -> Selection:
    """`budget` unused pool samples whose skills overlap the target's, ignoring the student's errors.

    A sample scores the summed step share of the target skills it teaches, so
    samples teaching more (and more frequent) target skills come first; equal
    scores are ordered by a seeded shuffle rather than by pool order.
    """
    weights = target_skill_weights(target)
    excluded = set(used)
    ids = [sample_id for sample_id in pool_skills if sample_id not in excluded]
    random_module.Random(seed).shuffle(ids)
    scored = [(sum(weights.get(skill, 0.0) for skill in set(pool_skills[s])), s) for s in ids]
    ranked = sorted((pair for pair in scored if pair[0] > 0), key=lambda pair: -pair[0])[:budget]
    items = [SelectionItem(sample_id=sample_id, gap=", ".join(sorted(set(pool_skills[sample_id]) & set(weights))),
                           query="", method="task-skills", score=round(score, 6), rank=rank)
             for rank, (score, sample_id) in enumerate(ranked, start=1)]
    return Selection(strategy="task-skills", budget=budget, allocation={}, items=items,
                     shortfall={"": budget - len(items)} if len(items) < budget else {})
