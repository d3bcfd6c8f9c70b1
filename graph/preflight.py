"""Refusals before any work: what would fail later and needs no model to find."""

from __future__ import annotations

from pathlib import Path

from gaptune.agents.llm.server_check import check_server
from gaptune.agents.selectors.protocol import Selector
from gaptune.agents.teacher_config import http_teachers
from gaptune.data.errors import ConfigError
from gaptune.graph.config import RunConfig
from gaptune.graph.pool_search import datastore_settings
from gaptune.graph.run_data import RunData
from gaptune.training.fit import resolve_device


def check_before_work(config: RunConfig, data: RunData, selector: Selector) -> None:
    """A file that is not there, a device this machine lacks, a teacher without its key or server, a teacher or a
    selection strategy the data cannot feed."""
    check_files_exist(config)
    resolve_device(config.trainer.device)
    if config.student.path is None:
        resolve_device(config.student.tiny.device)
    if config.teacher.check_servers:
        for role, backend in http_teachers(config.teacher):
            check_server(backend, role=role)
    check_teacher_fits_data(config, data)
    check_selector_fits_data(config, data, selector)


def check_files_exist(config: RunConfig) -> None:
    """Every path the config names, by its key."""
    paths = {"task.probe": config.task.probe, "task.val": config.task.val, "task.test": config.task.test,
             "task.ceiling": config.task.ceiling, "task.image_root": config.task.image_root,
             "pool.path": config.pool.path, "pool.image_root": config.pool.image_root,
             "student.path": config.student.path, "selector_options.ids": config.selector_options.get("ids")}
    for key, path in paths.items():
        if path is not None and "://" not in path and not Path(path).exists():
            raise ConfigError(f"{key}: {path} does not exist")


def check_teacher_fits_data(config: RunConfig, data: RunData) -> None:
    """The reference and reader teachers read gold rationale steps: refuse a task without them before any work."""
    teacher = config.teacher
    backends = [*teacher.critics, *([teacher.fallback] if teacher.fallback else [])]
    gold_readers = [c.backend for c in backends if c.backend in ("reference", "reader")]
    missing = [s.id for s in data.splits["probe"] if not s.steps]
    if gold_readers and missing:
        notes = "".join(f" (note: {note})" for note in data.files.get("task.probe", {}).get("notes", []))
        raise ConfigError(
            f"the {gold_readers[0]} teacher needs gold rationale steps, but {len(missing)} probe samples have none "
            f"(e.g. {missing[0]!r}){notes}; add them as docs/data.md shows, or configure an LLM critic in "
            "teacher.critics (see docs/teachers.md)"
        )


def check_selector_fits_data(config: RunConfig, data: RunData, selector: Selector) -> None:
    """A strategy that reads gold rationale steps (task-skills) is refused on a task without them; a gradient
    datastore's settings are checked."""
    if selector.needs.datastore:
        datastore_settings(config, config.selector_options.get("datastore", {}))
    if not selector.needs.gold_steps:
        return
    missing = [s.id for s in data.splits["probe"] if not s.steps]
    if missing:
        raise ConfigError(
            f"selection {config.selection!r} reads the target's gold rationale steps, but {len(missing)} "
            f"probe samples have none (e.g. {missing[0]!r}); choose another selection"
        )
