"""The hierarchical bootstrap widens intervals by the seeds' spread, which the item bootstrap ignores."""

from __future__ import annotations

import numpy as np
import pytest

from gaptune.experiments.statistics import hierarchical_bootstrap, paired_bootstrap, paired_differences


def test_seed_spread_alone_gives_the_interval_of_a_mean_over_resampled_seeds() -> None:
    # Five seeds whose arms differ by a constant per seed (no item noise): the item bootstrap sees no
    # uncertainty at all, the seed level has population variance 0.02, so the bootstrap mean of five
    # seeds has sd sqrt(0.02 / 5) = 0.063 and a 95% interval about 2 x 1.96 x 0.063 = 0.25 wide.
    shifts = [-0.2, -0.1, 0.0, 0.1, 0.2]
    differences = {s: np.full(400, shift) for s, shift in enumerate(shifts)}
    contrast = hierarchical_bootstrap(differences, resamples=4000)
    assert contrast.mean == pytest.approx(0.0, abs=1e-12)
    assert contrast.per_seed == pytest.approx(dict(enumerate(shifts)))
    assert contrast.high - contrast.low == pytest.approx(2 * 1.96 * np.sqrt(0.02 / 5), rel=0.15)


def test_one_seed_is_the_item_bootstrap_of_that_seed() -> None:
    # One seed: 500 items where the arm is right and the reference wrong on 60, the reverse on 20.
    arm = {0: [True] * 60 + [False] * 20 + [True] * 420}
    reference = {0: [False] * 60 + [True] * 20 + [True] * 420}
    hierarchical = hierarchical_bootstrap(paired_differences(arm, reference), resamples=4000)
    mean, low, high = paired_bootstrap(arm, reference, resamples=4000)
    values = np.array([1.0] * 60 + [-1.0] * 20 + [0.0] * 420)
    analytic_width = 2 * 1.96 * values.std() / np.sqrt(values.size)
    assert hierarchical.mean == pytest.approx(mean) == pytest.approx(0.08)
    assert hierarchical.high - hierarchical.low == pytest.approx(analytic_width, rel=0.1)
    assert high - low == pytest.approx(analytic_width, rel=0.1)


def test_mismatched_items_and_no_seeds_are_errors() -> None:
    with pytest.raises(ValueError, match="seed 0 has 2 items in one arm and 3"):
        paired_differences({0: [True, False]}, {0: [True, True, False]})
    with pytest.raises(ValueError, match="share no seed"):
        paired_differences({0: [True]}, {1: [True]})
    with pytest.raises(ValueError, match="no seeds"):
        hierarchical_bootstrap({})
