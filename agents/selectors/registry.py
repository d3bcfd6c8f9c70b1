"""Every selection strategy by its config name: the one place that knows them all.

A new strategy is one new module implementing `GapSelector` or
`PoolSelector` and one line here; the config check, the loop and the
efficiency harness ask the strategy, never compare its name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gaptune.agents.selectors.ceiling import Ceiling
from gaptune.agents.selectors.error_driven import ErrorDriven
from gaptune.agents.selectors.fixed import Fixed
from gaptune.agents.selectors.full_pool import FullPool
from gaptune.agents.selectors.gradient import Gradient
from gaptune.agents.selectors.knn import Knn
from gaptune.agents.selectors.probe_only import ProbeOnly
from gaptune.agents.selectors.protocol import Selector
from gaptune.agents.selectors.random_draw import RandomDraw
from gaptune.agents.selectors.task_skills import TaskSkills

SELECTORS: dict[str, Callable[[Mapping[str, Any]], Selector]] = {
    "error-driven": ErrorDriven,
    "random": RandomDraw,
    "full": FullPool,
    "task-skills": TaskSkills,
    "probe-only": ProbeOnly,
    "ceiling": Ceiling,
    "fixed": Fixed,
    "knn": Knn,
    "gradient": Gradient,
}


def build_selector(name: str, options: Mapping[str, Any] | None = None) -> Selector:
    """The strategy `name` with its options; an unknown name is a ValueError naming the choices."""
    if name not in SELECTORS:
        raise ValueError(f"selection: unknown strategy {name!r}; the choices are {', '.join(SELECTORS)}")
    return SELECTORS[name](options or {})
