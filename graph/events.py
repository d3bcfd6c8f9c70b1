"""The decision trace's events: one typed model per kind, written by the nodes and read by explain, the CLI and tests.

Every event names the graph node that made the decision (`node`, as in
graph/build.py) and its `kind`, which selects the model when trace.jsonl is
read back. `inputs` are what the decision was based on, `output` what it
decided. A line that is not an event of this version (a run directory of an
older gaptune) is one clear error, not a silent misreading.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gaptune.data.records import Critique, SelectionItem
from gaptune.tools.classify_gaps import GapMapping


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EventBase(_Part):
    event_id: str
    time: float = Field(default_factory=time.time)
    round: int
    agent: str
    model: str = ""
    latency_s: float = 0.0


class Scores(_Part):
    val_acc: float
    test_acc: float


class StartInputs(_Part):
    student: str


class StartEvent(EventBase):
    """Round 0: the base student's scores."""

    kind: Literal["start"] = "start"
    node: Literal["start"] = "start"
    inputs: StartInputs
    output: Scores


class LoadInputs(_Part):
    path: str


class LoadOutput(_Part):
    skipped: int
    problems: list[str]


class LoadEvent(EventBase):
    """A user's data file with skipped rows; loading is no graph node (it happens when a node first needs the file)."""

    kind: Literal["load"] = "load"
    node: None = None
    inputs: LoadInputs
    output: LoadOutput


class ProbeInputs(_Part):
    adapter: str | None
    samples: int


class ProbeOutput(_Part):
    accuracy: float
    wrong_cases: list[str]


class ProbeEvent(EventBase):
    kind: Literal["probe"] = "probe"
    node: Literal["probe"] = "probe"
    inputs: ProbeInputs
    output: ProbeOutput


class CritiqueInputs(_Part):
    case: str
    student_output: str


class CritiqueEvent(EventBase):
    """One critic's verdict on one wrong case."""

    kind: Literal["critique"] = "critique"
    node: Literal["critique"] = "critique"
    inputs: CritiqueInputs
    output: Critique


class CaseInput(_Part):
    case: str


class Fault(_Part):
    fault: str
    message: str


class CritiqueFaultEvent(EventBase):
    """A critic that gave up on a case (after its retries, or blocked by fail-fast)."""

    kind: Literal["critique_fault"] = "critique_fault"
    node: Literal["critique"] = "critique"
    inputs: CaseInput
    output: Fault


class JudgeInputs(_Part):
    case: str
    candidates: list[Critique]


class JudgeOutput(_Part):
    chosen: int
    teacher: str
    reason: str


class JudgeEvent(EventBase):
    kind: Literal["judge"] = "judge"
    node: Literal["judge"] = "judge"
    inputs: JudgeInputs
    output: JudgeOutput


class ClassifyInputs(_Part):
    critiques: list[str]


class ClassifyOutput(_Part):
    gaps: dict[str, int]
    source: str
    mapping: list[GapMapping]
    diagnosis: dict[str, int]


class ClassifyEvent(EventBase):
    kind: Literal["classify"] = "classify"
    node: Literal["classify"] = "classify"
    inputs: ClassifyInputs
    output: ClassifyOutput


class SelectInputs(_Part):
    gaps: dict[str, int]
    budget: int
    excluded: int
    cases_by_gap: dict[str, list[str]]


class SelectOutput(_Part):
    strategy: str
    allocation: dict[str, int]
    shortfall: dict[str, int]
    items: list[SelectionItem]


class SelectEvent(EventBase):
    """A round's selection, by the gap selectors' merge or by a pool selector in one step."""

    kind: Literal["select"] = "select"
    node: Literal["merge_selection", "select_data"]
    inputs: SelectInputs
    output: SelectOutput


class TrainInputs(_Part):
    candidate: str
    previous: str | None
    train_size: int
    pool_samples: int


class TrainOutput(_Part):
    candidate: str
    adapter: str
    val_acc: float
    train_size: int
    steps: int
    final_loss: float


class TrainEvent(EventBase):
    kind: Literal["train"] = "train"
    node: Literal["train"] = "train"
    inputs: TrainInputs
    output: TrainOutput


class ChooseInputs(_Part):
    candidates: list[str]
    incumbent_val_acc: float


class ChooseOutput(_Part):
    chosen: str | None
    why: str
    val_acc: float
    test_acc: float
    stop_reason: str | None


class ChooseEvent(EventBase):
    kind: Literal["choose"] = "choose"
    node: Literal["choose"] = "choose"
    inputs: ChooseInputs
    output: ChooseOutput


TraceEvent = Annotated[
    StartEvent | LoadEvent | ProbeEvent | CritiqueEvent | CritiqueFaultEvent | JudgeEvent | ClassifyEvent
    | SelectEvent | TrainEvent | ChooseEvent,
    Field(discriminator="kind"),
]
EVENT: TypeAdapter[TraceEvent] = TypeAdapter(TraceEvent)
