"""What a selection strategy is, what it declares, and what it may read in a round.

A strategy declares its needs instead of being recognised by name: the loop
stops a round without errors only for a strategy that reads errors, refuses
a task without gold steps before any work only for one that reads them,
builds the gradient datastore only for one that asks for it, and keeps going
on an empty selection only for one that wants no pool data. Two shapes:
a `GapSelector` turns the round's evidence into a gap profile, which the
graph retrieves per gap in parallel branches (budget split, dedupe, top-up
in the retriever); a `PoolSelector` picks pool ids itself in one step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
from pydantic import BaseModel, ValidationError

from gaptune.agents.retriever import Query, RetrievalConfig
from gaptune.data.attempt import Attempt
from gaptune.data.records import Selection
from gaptune.data.sample import Sample
from gaptune.tools.pool_index import PoolIndex

OptionsT = TypeVar("OptionsT", bound=BaseModel)


@dataclass(frozen=True)
class Needs:
    """What a strategy reads, so the loop can prepare it, check for it, or stop without it."""

    # The round's wrong probe cases: a round with none stops the loop ("no errors left").
    errors: bool = False
    # The target's gold rationale steps: a probe split without them is refused before any work.
    gold_steps: bool = False
    # Per-sample gradient features of the pool (built once per student, pool and warm-up, cached);
    # its settings, `selector_options.datastore`, are checked before any work.
    datastore: bool = False
    # False for an arm that trains on the probe alone: its empty selection is no reason to stop.
    pool_data: bool = True


@dataclass(frozen=True)
class SelectorSetup:
    """The parts of a run config a strategy checks when the config is read."""

    world_task: bool
    ceiling_file: str | None


@dataclass(frozen=True)
class GradientFeatures:
    """Projected per-sample gradients: the pool's (Adam-preconditioned) and the targets' (plain), rows in id order."""

    pool_ids: list[str]
    pool: np.ndarray
    target_ids: list[str]
    targets: np.ndarray


@dataclass(frozen=True)
class GapEvidence:
    """What a round found: the classified errors, each wrong attempt with its blamed step, the target's samples."""

    query: Query
    error_gaps: Mapping[str, int]
    wrong_steps: Sequence[tuple[Attempt, int | None]]
    target: Sequence[Sample]


class RoundInputs(Protocol):
    """What a `PoolSelector` may read in a round; the graph provides it, building costly parts on first use."""

    @property
    def round(self) -> int: ...
    @property
    def budget(self) -> int: ...
    @property
    def used(self) -> Sequence[str]: ...
    @property
    def seed(self) -> int: ...
    @property
    def pool_ids(self) -> Sequence[str]: ...
    @property
    def index(self) -> PoolIndex: ...
    @property
    def retrieval(self) -> RetrievalConfig: ...
    @property
    def probe(self) -> Sequence[Sample]: ...
    @property
    def wrong_cases(self) -> Sequence[str]: ...
    @property
    def case_gaps(self) -> Mapping[str, str]:
        """Each wrong case with a kept critique -> the gap of the round's profile it counts toward (for a pool
        selector, the skill its critique was classified as)."""
        ...
    @property
    def ceiling_ids(self) -> Sequence[str]: ...
    def gradient_features(self, targets: Sequence[Sample], datastore: Mapping[str, Any]) -> GradientFeatures:
        """The pool's datastore features and those of `targets` (datastore: the warm-up's settings)."""
        ...


@runtime_checkable
class Selector(Protocol):
    """A selection strategy: its name in the config, its needs, its config check, its own stop reason."""

    @property
    def name(self) -> str: ...
    @property
    def needs(self) -> Needs: ...
    def check(self, setup: SelectorSetup) -> None:
        """Raise ValueError naming the config key when the run config cannot feed this strategy."""
        ...
    def stop_after_round(self) -> str | None:
        """A reason to stop after any round that is this strategy's own (None: the loop's usual rules)."""
        ...


@runtime_checkable
class GapSelector(Selector, Protocol):
    def gap_profile(self, evidence: GapEvidence) -> tuple[dict[str, int], str]:
        """The round's profile ({query key: weight}) and a phrase naming its source, for the trace."""
        ...


@runtime_checkable
class PoolSelector(Selector, Protocol):
    def select(self, inputs: RoundInputs) -> Selection: ...


class PlainStrategy:
    """The defaults of a strategy: no options, no config check, no stop reason of its own; a subclass sets `name`
    and `needs` and overrides what differs."""

    name: str
    needs = Needs()

    def __init__(self, options: Mapping[str, Any]) -> None:
        no_options(self.name, options)

    def check(self, setup: SelectorSetup) -> None:
        return None

    def stop_after_round(self) -> str | None:
        return None


def no_options(name: str, options: Mapping[str, Any]) -> None:
    """Strategies without options refuse any, naming the key."""
    if options:
        raise ValueError(f"selector_options: selection {name!r} takes no options (got {', '.join(options)})")


def parse_options(name: str, model: type[OptionsT], options: Mapping[str, Any], *,
                  key: str = "selector_options") -> OptionsT:
    """A strategy's options (or a part of them, under `key`) as a pydantic model; a bad or unknown key is a
    ValueError naming it."""
    try:
        return model.model_validate(dict(options))
    except ValidationError as error:
        problems = "; ".join(f"{key}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise ValueError(f"selection {name!r}: {problems}") from None
