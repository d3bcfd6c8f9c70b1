"""Honest comparisons of arms: mean ± std over seeds, and a paired bootstrap on the same test items.

Every arm of one (student, target, budget) cell is scored on the same test
items in every seed, so the difference of two arms is measured item by item:
the bootstrap resamples test items (the same resample in every seed) and
averages the per-seed differences, which keeps the pairing that an unpaired
interval would throw away.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import numpy as np


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("mean_std of no values")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_bootstrap(
    arm: Mapping[int, Sequence[bool]],
    reference: Mapping[int, Sequence[bool]],
    *,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean difference (arm - reference) in accuracy over the seeds both have, with its 95% interval.

    `arm` and `reference` map seed -> per-item correctness on the same test
    items in the same order.
    """
    seeds = sorted(set(arm) & set(reference))
    if not seeds:
        raise ValueError("paired_bootstrap: the two arms share no seed")
    differences = []
    for s in seeds:
        a, b = np.asarray(arm[s], dtype=float), np.asarray(reference[s], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"paired_bootstrap: seed {s} has {a.size} items in one arm and {b.size} in the other")
        differences.append(a - b)
    matrix = np.stack(differences)  # seeds x items
    items = matrix.shape[1]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, items, size=(resamples, items))
    means = matrix[:, draws].mean(axis=(0, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return float(matrix.mean()), float(low), float(high)
