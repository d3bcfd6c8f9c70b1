"""The selection strategies as plug-ins: each one is found by name, declares its needs and checks its own config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gaptune.agents.selectors.fixed import Fixed
from gaptune.agents.selectors.protocol import GapSelector, PoolSelector
from gaptune.agents.selectors.registry import build_selector, strategies
from gaptune.data.errors import ConfigError
from gaptune.experiments.spec import ARMS
from gaptune.graph.config import load_config


@pytest.mark.parametrize("name", sorted(strategies()))
def test_every_strategy_has_one_shape_and_its_own_name(name: str) -> None:
    options = {"fixed": {"ids": "ids.txt"}, "skill-mix": {"skills": {"size": 1}}}.get(name, {})
    selector = build_selector(name, options)
    assert selector.name == name
    assert isinstance(selector, GapSelector) != isinstance(selector, PoolSelector), "retrieved per gap, or picked"
    assert ARMS[name][0] == f"selection={name}", "every strategy is an arm of the efficiency harness"


def test_needs_are_declared_not_inferred_from_names() -> None:
    assert build_selector("error-driven").needs.errors
    assert not build_selector("random").needs.errors
    assert build_selector("task-skills").needs.gold_steps and not build_selector("error-driven").needs.gold_steps
    assert not build_selector("probe-only").needs.pool_data and build_selector("random").needs.pool_data
    assert build_selector("full").stop_after_round() == "full pool trained in one round"
    assert build_selector("error-driven").stop_after_round() is None


def test_unknown_strategy_and_stray_options_are_config_errors_naming_the_choice() -> None:
    with pytest.raises(ConfigError, match=r"unknown strategy .best.; the choices are ceiling, error-driven, fixed, full"):
        load_config(None, ["selection=best"])
    with pytest.raises(ConfigError, match=r"selection 'random' takes no options \(got ids\)"):
        load_config(None, ["selection=random", "selector_options.ids=x.txt"])
    with pytest.raises(ConfigError, match=r"selector_options.ids: Field required"):
        load_config(None, ["selection=fixed"])
    with pytest.raises(ConfigError, match=r"selector_options.idz: Extra inputs"):
        load_config(None, ["selection=fixed", "selector_options.ids=x.txt", "selector_options.idz=y"])
    with pytest.raises(ConfigError, match="needs task.ceiling"):
        load_config(None, ["selection=ceiling", "task.world=null", "task.probe=p", "task.val=v", "task.test=t"])


PLUGIN = """
from gaptune.agents.selectors.protocol import Needs, no_options
from gaptune.data.records import Selection


class FirstIds:
    name = "first-ids"
    needs = Needs()

    def __init__(self, options):
        no_options(self.name, options)

    def check(self, setup):
        return None

    def stop_after_round(self):
        return None

    def select(self, inputs):
        return Selection(strategy=self.name, budget=inputs.budget, allocation={}, items=[])
"""


def test_a_strategy_of_another_distribution_is_found_by_its_entry_point(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "first_ids_plugin.py").write_text(PLUGIN)
    info = tmp_path / "first_ids_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: first-ids-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[gaptune.selectors]\nfirst-ids = first_ids_plugin:FirstIds\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    strategies.cache_clear()
    try:
        assert "first-ids" in strategies() and "error-driven" in strategies()
        selector = build_selector("first-ids")
        assert isinstance(selector, PoolSelector) and not isinstance(selector, GapSelector)
        assert load_config(None, ["selection=first-ids"]).selection == "first-ids"
    finally:
        monkeypatch.undo()
        strategies.cache_clear()
    assert "first-ids" not in strategies(), "uninstalled, the plug-in is gone"


class _Inputs:
    """Just the round inputs the fixed selection reads."""

    budget = 2
    used = ("b",)
    pool_ids = ("a", "b", "c", "d")


def test_fixed_selection_reads_its_file_and_names_it_when_ids_are_unknown(tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text("d\nb\n\na\n")
    assert Fixed({"ids": str(ids)}).select(_Inputs()).sample_ids == ["d", "a"]  # type: ignore[arg-type]
    ids.write_text("a\nzz\n")
    with pytest.raises(ConfigError, match=r"1 ids of .*ids.txt are not in the pool \(e.g. 'zz'\)"):
        Fixed({"ids": str(ids)}).select(_Inputs())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="does not exist"):
        Fixed({"ids": str(tmp_path / "missing.txt")}).select(_Inputs())  # type: ignore[arg-type]
