"""What the nodes work with but the state must not hold, in four parts built once from the run config.

`data` (the samples), `search` (the pool's index and gradient datastore),
`teachers` (critics, judge, their limits) and `student` (its evaluation and
attempts), beside the config, the run directory, the trace and the selector.
Every costly part is built on first use, so a resumed run rebuilds exactly
the same resources from `config.yaml` and the caches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from rich.console import Console

from gaptune.agents.selectors.protocol import Selector
from gaptune.agents.selectors.registry import build_selector
from gaptune.graph.config import RunConfig
from gaptune.graph.pool_search import PoolSearch
from gaptune.graph.preflight import check_before_work
from gaptune.graph.run_data import RunData
from gaptune.graph.run_dir import RunDir
from gaptune.graph.student import Student
from gaptune.graph.teachers import Teachers
from gaptune.graph.trace import Trace


@dataclass
class Resources:
    config: RunConfig
    run: RunDir
    console: Console = field(default_factory=Console)

    @cached_property
    def trace(self) -> Trace:
        return Trace(self.run.trace)

    @cached_property
    def selector(self) -> Selector:
        """The run's selection strategy (its name and options were checked when the config was read)."""
        return build_selector(self.config.selection, self.config.selector_options)

    @cached_property
    def data(self) -> RunData:
        return RunData(self.config, self.trace, self.console)

    @cached_property
    def student(self) -> Student:
        return Student(self.config, self.data, self.run)

    @cached_property
    def search(self) -> PoolSearch:
        return PoolSearch(self.config, self.data, lambda: self.student.path, self.console)

    @cached_property
    def teachers(self) -> Teachers:
        return Teachers(self.config, lambda: self.data.skill_vocabulary)

    def check_before_work(self) -> None:
        check_before_work(self.config, self.data, self.selector)
