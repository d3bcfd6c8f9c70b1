"""The gradient selector's ranking on given features: cosine to each group's targets, budget split by errors, dedupe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gaptune.agents.retriever import RetrievalConfig
from gaptune.agents.selectors.gradient import UNCLASSIFIED, Gradient
from gaptune.agents.selectors.protocol import GradientFeatures
from gaptune.data.errors import ConfigError
from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split
from gaptune.graph.config import load_config
from gaptune.graph.preflight import check_selector_fits_data
from gaptune.graph.resources import Resources
from gaptune.graph.run_dir import RunDir

PROBE = task_split("compare-counts", "probe", size=4)
# pool rows: p0, p1 point along x; p2, p3 along y; p4 between; p5 opposite to x
POOL = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.7, 0.7], [-1, 0]], dtype=np.float32)


class _Inputs:
    round = 1
    seed = 0
    retrieval = RetrievalConfig()

    def __init__(self, budget: int, used: Sequence[str], wrong: Sequence[str], gaps: Mapping[str, str]) -> None:
        self.budget, self.used, self.wrong_cases, self.case_gaps = budget, used, wrong, gaps
        self.probe = PROBE
        self.asked: list[str] = []

    def gradient_features(self, targets: Sequence[Sample], datastore: Mapping[str, Any]) -> GradientFeatures:
        self.asked = [t.id for t in targets]
        directions = {PROBE[0].id: [1, 0], PROBE[1].id: [2, 0], PROBE[2].id: [0, 3], PROBE[3].id: [0, 1]}
        return GradientFeatures(pool_ids=[f"p{i}" for i in range(len(POOL))], pool=POOL,
                                target_ids=[t.id for t in targets],
                                targets=np.array([directions[t.id] for t in targets], dtype=np.float32))


def test_each_gap_takes_its_targets_nearest_pool_samples_by_error_share() -> None:
    wrong = [PROBE[0].id, PROBE[1].id, PROBE[2].id]
    inputs = _Inputs(3, used=["p0"], wrong=wrong, gaps={PROBE[0].id: "counting", PROBE[1].id: "counting",
                                                        PROBE[2].id: "comparison"})
    selection = Gradient({}).select(inputs)  # type: ignore[arg-type]
    assert inputs.asked == wrong, "targets are the wrong cases"
    assert selection.allocation == {"counting": 2, "comparison": 1}
    by_gap = {gap: [i.sample_id for i in selection.items if i.gap == gap] for gap in selection.allocation}
    assert by_gap == {"counting": ["p1", "p4"], "comparison": ["p2"]}, "p0 was used; nearest first"
    assert selection.strategy == "gradient/wrong" and not selection.shortfall
    top = next(i for i in selection.items if i.sample_id == "p2")
    assert top.score == pytest.approx(1.0) and top.method == "gradient"


def test_a_sample_two_gaps_want_goes_to_the_one_ranking_it_higher() -> None:
    inputs = _Inputs(4, used=[], wrong=[PROBE[0].id, PROBE[3].id], gaps={PROBE[0].id: "a"})
    selection = Gradient({}).select(inputs)  # type: ignore[arg-type]
    assert selection.allocation == {"a": 2, UNCLASSIFIED: 2}
    ids = selection.sample_ids
    assert len(ids) == len(set(ids)) == 4 and "p5" not in ids, "the opposite direction ranks last"


def test_all_probe_targets_need_no_errors_and_options_are_checked() -> None:
    inputs = _Inputs(2, used=[], wrong=[], gaps={})
    selector = Gradient({"targets": "all"})
    assert not selector.needs.errors and selector.needs.datastore and Gradient({}).needs.errors
    assert selector.select(inputs).allocation == {"probe": 2}  # type: ignore[arg-type]
    assert inputs.asked == [s.id for s in PROBE]
    with pytest.raises(ConfigError, match=r"selector_options.targets: Input should be 'wrong' or 'all'"):
        load_config(None, ["selection=gradient", "selector_options.targets=some"])
    config = load_config(None, ["selection=gradient", "selector_options.datastore.projection_dim=0"])
    with pytest.raises(ConfigError, match=r"selector_options.datastore.projection_dim: Input should be greater"):
        res = Resources(config, RunDir(Path("/nonexistent")))
        check_selector_fits_data(res.config, res.data, res.selector)
