"""Mean ± std and the paired bootstrap that the efficiency table reports."""

from __future__ import annotations

import random

import pytest

from gaptune.experiments.statistics import mean_std, paired_bootstrap


def test_mean_std() -> None:
    assert mean_std([0.5, 0.7, 0.9]) == pytest.approx((0.7, 0.2))
    assert mean_std([0.4]) == (0.4, 0.0)
    with pytest.raises(ValueError):
        mean_std([])


def test_identical_arms_differ_by_exactly_zero() -> None:
    items = [random.Random(1).random() < 0.6 for _ in range(300)]
    assert paired_bootstrap({0: items}, {0: items}) == (0.0, 0.0, 0.0)


def test_a_real_gain_excludes_zero_and_a_coin_flip_does_not() -> None:
    rng = random.Random(0)
    reference = {seed: [rng.random() < 0.6 for _ in range(500)] for seed in range(3)}
    # Flip 15% of the reference's wrong answers to right: a gain of about 6 points.
    better = {s: [c or rng.random() < 0.15 for c in items] for s, items in reference.items()}
    diff, low, high = paired_bootstrap(better, reference)
    assert 0.03 < diff < 0.09 and 0 < low < diff < high
    noise = {s: [rng.random() < 0.6 for _ in items] for s, items in reference.items()}
    diff, low, high = paired_bootstrap(noise, reference)
    assert low < 0 < high


def test_pairs_only_shared_seeds_and_rejects_mismatched_items() -> None:
    a = {0: [True, False], 5: [True, True]}
    b = {0: [False, False], 7: [True, True]}
    assert paired_bootstrap(a, b)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="share no seed"):
        paired_bootstrap({1: [True]}, {2: [True]})
    with pytest.raises(ValueError, match="items"):
        paired_bootstrap({0: [True]}, {0: [True, False]})
