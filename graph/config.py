"""The run config: one YAML file, validated by pydantic, every field overridable with key=value.

Each component's config class lives next to the component (TrainerConfig in
training/, TeacherConfig and RetrievalConfig in agents/); `RunConfig` only
composes them and adds the loop's own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gaptune.agents.retriever import RetrievalConfig
from gaptune.agents.selectors.protocol import SelectorSetup
from gaptune.agents.selectors.registry import build_selector
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.cache import cache_dir
from gaptune.data.engine import EngineConfig
from gaptune.data.errors import ConfigError
from gaptune.data.loaders import DuplicateIds
from gaptune.data.world.world import DEFAULT_POOL_SIZE, DEFAULT_SPLIT_SIZES, TASKS
from gaptune.graph.mlflow_tracking import TrackingConfig
from gaptune.graph.otel_tracing import TracingConfig
from gaptune.training.candidate_kinds import kind_spec
from gaptune.training.config import StudentServerConfig, TinyStudentConfig, TrainerConfig

Mining = Literal["held-out", "all"]


class TaskConfig(BaseModel):
    """The target task: a world task by name, or the user's own split files."""

    model_config = ConfigDict(extra="forbid")

    world: str | None = "compare-counts"
    probe: str | None = None
    val: str | None = None
    test: str | None = None
    # True target-task training data for the `ceiling` arm (a world task draws its own).
    ceiling: str | None = None
    image_root: str | None = None
    probe_size: int = DEFAULT_SPLIT_SIZES["probe"]
    val_size: int = DEFAULT_SPLIT_SIZES["val"]
    test_size: int = DEFAULT_SPLIT_SIZES["test"]
    # Which draw of the world task's probe and val splits (the test split never changes).
    draw: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> TaskConfig:
        files = [self.probe, self.val, self.test]
        if self.world is None and None in files:
            raise ValueError("task: set task.world to a world task, or all of task.probe, task.val and task.test")
        if self.world is not None and any(files):
            raise ValueError("task: task.world and split files are exclusive; set task.world=null to use files")
        if self.world is not None and self.world not in TASKS:
            raise ValueError(f"task.world: unknown world task {self.world!r}; the world's tasks are {', '.join(TASKS)}")
        return self

    @property
    def name(self) -> str:
        return self.world or Path(self.probe or "task").stem


class PoolConfig(BaseModel):
    """The task-agnostic instruction pool: the world's, or the user's LLaVA-format file."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    image_root: str | None = None
    size: int = DEFAULT_POOL_SIZE
    # strict: the first bad row stops the load; else bad rows are counted skips.
    strict: bool = False
    # A repeated sample id: skip the later one (counted, both rows named in metrics), or stop with an error.
    duplicate_ids: DuplicateIds = "skip"
    # Pool families (Sample.task) left out, e.g. the one sharing the target's question template.
    exclude_families: list[str] = Field(default_factory=list)


class StudentConfig(BaseModel):
    """The student: a local Hugging Face checkpoint, or (path unset) the built-in tiny student."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    tiny: TinyStudentConfig = Field(default_factory=TinyStudentConfig)
    eval_batch_size: int = 64
    max_new_tokens: int = 48
    # Evaluate on an OpenAI-compatible server (vLLM) instead of in-process; training stays here.
    server: StudentServerConfig | None = None


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    # The world the task splits and the pool are drawn from. The tiny student's pretraining world is
    # its own key, student.tiny.world_seed (part of the student's fingerprint).
    world_seed: int = 0
    # The selection strategy, by its name in agents/selectors/registry (error-driven is the method).
    selection: str = "error-driven"
    # The strategy's own options (e.g. `ids` of the fixed selection), checked by it.
    selector_options: dict[str, Any] = Field(default_factory=dict)
    # Where pool-sized batch work runs (embedding the pool, the gradient datastore's features): this process,
    # or a Ray cluster (`engine.name=ray`, `engine.address`; the optional extra gaptune[ray]).
    engine: EngineConfig = Field(default_factory=EngineConfig)
    max_rounds: int = Field(default=3, ge=1)
    patience: int = Field(default=2, ge=1)
    min_delta: float = Field(default=0.01, ge=0.0)
    # if-not-worse: a round's best candidate replaces the adapter in use only at equal or higher val
    # accuracy (else the round keeps the previous one, and counts towards the plateau); always: it does.
    replace_adapter: Literal["if-not-worse", "always"] = "if-not-worse"
    # 800 a round: on the embedded default, counting needs ~2,000 targeted
    # samples before it moves; 300 a round left every arm near the base.
    round_budget: int = Field(default=800, ge=1)
    budget: int = Field(default=2400, ge=1)
    include_probe: bool = True
    # Times the probe's training part appears in a candidate's training set. The `full` arm
    # trains one epoch over the whole pool; repeating the probe keeps its passes equal to the
    # other arms' (epochs x 1).
    probe_repeats: int = Field(default=1, ge=1)
    # held-out: errors are mined on a part of the probe split that is never trained on
    # (`mining_fraction` of it); all: mined on the whole probe split, which is also trained
    # on from round 1 (so later rounds mine on data the student has seen).
    mining: Mining = "held-out"
    mining_fraction: float = Field(default=0.5, gt=0.0, lt=1.0)
    # Graph branches run at once (critiques, per-gap retrievals). Two other bounds are separate keys:
    # teacher requests in flight (teacher.max_concurrency) and student-server requests
    # (student.server.max_concurrency).
    max_concurrency: int = Field(default=4, ge=1)
    cache_dir: str = Field(default_factory=lambda: str(cache_dir()))
    task: TaskConfig = Field(default_factory=TaskConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    # Observability (docs/observability.md): off by default; the loop runs the same either way.
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)

    @model_validator(mode="after")
    def _selection_inputs(self) -> RunConfig:
        selector = build_selector(self.selection, self.selector_options)
        selector.check(SelectorSetup(world_task=self.task.world is not None, ceiling_file=self.task.ceiling))
        kinds = set(self.trainer.candidates)
        if self.student.server is not None and (len(kinds) > 1 or not all(kind_spec(k).servable for k in kinds)):
            raise ValueError("student.server applies one LoRA adapter on the language model: set trainer.candidates "
                             "to [lora] or [in-context] (connector adapters and chains of kinds are evaluated "
                             "in-process only)")
        return self


_PHRASES = {
    "int_parsing": "not an integer", "int_type": "not an integer", "int_from_float": "not an integer",
    "float_parsing": "not a number", "float_type": "not a number", "bool_parsing": "not a boolean",
    "bool_type": "not a boolean", "string_type": "not a string", "list_type": "not a list",
    "dict_type": "not a mapping", "model_type": "not a mapping of keys", "missing": "missing (required)",
}
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}


def _key(loc: tuple[int | str, ...]) -> str:
    """`teacher.critics[0].model`: the dotted key a user writes in YAML or `--set`."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def _problem(problem: Any) -> str:
    """One validation problem as `key: what` (no key for checks across fields, whose message names them)."""
    kind, key, given = problem["type"], _key(problem["loc"]), problem.get("input")
    if kind == "extra_forbidden":
        return f"unknown key {key!r}"
    if kind in _BOUNDS:
        bound = next(iter(problem["ctx"].values()))
        what = f"must be {_BOUNDS[kind]} {bound} (got {given!r})"
    elif kind in _PHRASES:
        what = _PHRASES[kind] + (f" ({given!r})" if kind != "missing" and not isinstance(given, dict | list) else "")
    else:
        message = str(problem["msg"]).removeprefix("Value error, ")
        what = message[:1].lower() + message[1:] + (f" (got {given!r})" if kind == "literal_error" else "")
    return f"{key}: {what}" if key and not what.startswith(key) else what


def _describe(error: ValidationError, source: str) -> str:
    """Every problem of a config on one line: `invalid config (source): max_rounds: not an integer ('abc'); ...`."""
    return f"invalid config ({source}): " + "; ".join(_problem(problem) for problem in error.errors())


def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {key!r}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`key.sub=value`; the value is read as YAML, so numbers, booleans and lists work."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key=value, e.g. selection=random")
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as error:
        raise ConfigError(_yaml_problem(f"override {text!r}", error).replace(":1:", " column ", 1)) from error


def _yaml_problem(source: str, error: yaml.YAMLError) -> str:
    """`FILE:LINE:COL: what` (1-based, as editors count), PyYAML's multi-line marker left to --debug."""
    mark = getattr(error, "problem_mark", None)
    what = getattr(error, "problem", None) or str(error).splitlines()[0]
    context = getattr(error, "context", None)
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    return f"{where}: invalid YAML: {what}" + (f" ({context})" if context else "")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the embedded default when `path` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "embedded default"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError as error:
            raise ConfigError(f"config file {source!r} does not exist") from error
        except yaml.YAMLError as error:
            raise ConfigError(_yaml_problem(source, error)) from error
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {source!r}: expected a mapping of keys at the top level")
        data = loaded or {}
    for override in overrides or []:
        key, value = parse_override(override)
        _set_dotted(data, key, value)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, source if not overrides else f"{source} + overrides")) from error


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
