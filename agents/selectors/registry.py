"""Every selection strategy by its config name, found rather than listed.

A strategy is one module of this package that sets `STRATEGY` to its class
(a `GapSelector` or `PoolSelector` whose `name` is its config name); a
strategy of another distribution is an entry point in the group
`gaptune.selectors`. The config check, the loop and the experiment harness
ask the strategy, never compare its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from gaptune.agents import selectors
from gaptune.agents.selectors.protocol import Selector

Factory = Callable[[Mapping[str, Any]], Selector]
ENTRY_POINT_GROUP = "gaptune.selectors"


@cache
def strategies() -> dict[str, Factory]:
    """{config name: class}, this package's modules first, then installed plug-ins."""
    found: dict[str, Factory] = {}
    for module in sorted(pkgutil.iter_modules(selectors.__path__), key=lambda m: m.name):
        strategy = getattr(importlib.import_module(f"{selectors.__name__}.{module.name}"), "STRATEGY", None)
        if strategy is not None:
            found[strategy.name] = strategy
    for plugin in entry_points(group=ENTRY_POINT_GROUP):
        strategy = plugin.load()
        if strategy.name in found:
            raise ValueError(f"entry point {plugin.value} ({ENTRY_POINT_GROUP}) reuses the strategy name "
                             f"{strategy.name!r}")
        found[strategy.name] = strategy
    return found


def build_selector(name: str, options: Mapping[str, Any] | None = None) -> Selector:
    """The strategy `name` with its options; an unknown name is a ValueError naming the choices."""
    known = strategies()
    if name not in known:
        raise ValueError(f"selection: unknown strategy {name!r}; the choices are {', '.join(known)}")
    return known[name](options or {})
