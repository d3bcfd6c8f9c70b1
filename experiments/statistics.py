"""Honest comparisons of arms: mean ± std over seeds, and bootstraps on the same test items.

Every arm of one (student, target, budget) cell is scored on the same test
items in every seed, so the difference of two arms is measured item by item.
`paired_bootstrap` resamples test items only (the same resample in every seed),
treating the seeds as fixed. `hierarchical_bootstrap` resamples seeds, then
items within each drawn seed: a seed draws a new student (initialisation,
pretraining world, data order), and on the first world's converged students
the item-only intervals were several times narrower than the seeds' spread
(DESIGN.md rule 14).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Contrast:
    """A difference in accuracy: its mean over seeds and items, a 95% interval, and each seed's own value."""

    mean: float
    low: float
    high: float
    per_seed: dict[int, float]


def paired_differences(arm: Mapping[int, Sequence[bool]], reference: Mapping[int, Sequence[bool]]) -> dict[int, np.ndarray]:
    """Per seed both arms have: item-by-item correctness of `arm` minus that of `reference`."""
    seeds = sorted(set(arm) & set(reference))
    if not seeds:
        raise ValueError("paired_differences: the two arms share no seed")
    differences = {}
    for s in seeds:
        a, b = np.asarray(arm[s], dtype=float), np.asarray(reference[s], dtype=float)
        if a.shape != b.shape:
            raise ValueError(f"paired_differences: seed {s} has {a.size} items in one arm and {b.size} in the other")
        differences[s] = a - b
    return differences


def hierarchical_bootstrap(differences: Mapping[int, Sequence[float] | np.ndarray], *, resamples: int = 2000,
                           seed: int = 0) -> Contrast:
    """Resample seeds with replacement, then items with replacement within each drawn seed.

    `differences` maps seed -> per-item differences on the same test items
    (e.g. `paired_differences`, or the sum of two students' differences for an
    interaction). With one seed this is the item bootstrap of that seed.
    """
    if not differences:
        raise ValueError("hierarchical_bootstrap of no seeds")
    seeds = sorted(differences)
    matrix = np.stack([np.asarray(differences[s], dtype=float) for s in seeds])  # seeds x items
    count, items = matrix.shape
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, count, size=(resamples, count))
    item_draws = rng.integers(0, items, size=(resamples, count, items))
    means = matrix[seed_draws[..., None], item_draws].mean(axis=(1, 2))
    low, high = np.percentile(means, [2.5, 97.5])
    return Contrast(mean=float(matrix.mean()), low=float(low), high=float(high),
                    per_seed={s: float(row.mean()) for s, row in zip(seeds, matrix, strict=True)})
