"""In-context format (MMICT): k solved demonstrations of the same task before each example."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from gaptune.data.sample import Sample


def pick_demonstrations(
    samples: Sequence[Sample], library: Sequence[Sample], *, k: int, seed: int
) -> dict[str, list[Sample]]:
    """For each sample, k library samples of the same task (any task when too few), never itself.

    Seeded per sample id, so a sample gets the same demonstrations in every
    round and after a resume.
    """
    by_task: dict[str, list[Sample]] = defaultdict(list)
    for candidate in library:
        by_task[candidate.task].append(candidate)
    chosen: dict[str, list[Sample]] = {}
    for sample in samples:
        rng = random.Random(f"{seed}/{sample.id}")
        same_task = [c for c in by_task.get(sample.task, []) if c.id != sample.id]
        pool = same_task if len(same_task) >= k else [c for c in library if c.id != sample.id]
        chosen[sample.id] = rng.sample(pool, min(k, len(pool)))
    return chosen
