"""Starting and resuming runs: the graph over a SQLite checkpointer in the run directory."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Overwrite
from rich.console import Console

from gaptune.data.atomic import write_text_atomic
from gaptune.data.errors import RunDirectoryError
from gaptune.graph.build import build_graph
from gaptune.graph.config import RunConfig, dump_config, load_config
from gaptune.graph.observe import observing
from gaptune.graph.resources import Resources
from gaptune.graph.run_dir import RunDir
from gaptune.graph.state import CHECKPOINTED_RECORDS, LoopState

THREAD = RunnableConfig(configurable={"thread_id": "gaptune"})


def _describe(node: str, update: dict[str, Any] | None) -> str:
    update = update or {}
    if node == "start":
        record = update["history"][0]
        return f"base student: val {record['val_acc']:.3f} · test {record['test_acc']:.3f}"
    if node == "probe":
        return f"round {update['round']}: {len(update['wrong_cases'])} wrong probe cases"
    if node == "classify":
        return "gaps " + (", ".join(f"{g}={n}" for g, n in update.get("gaps", {}).items()) or "none")
    if node in ("select_data", "merge_selection"):
        return f"selected {len(update['selected'])} pool samples ({len(update['used'])} used in all)"
    if node == "train":
        return "; ".join(f"trained {c['candidate']} on {c['train_size']} samples: val {c['val_acc']:.3f}"
                         for c in update["candidates"])
    if node == "choose":
        record = update["history"][-1]
        stop = f" · stop: {update['stop_reason']}" if update.get("stop_reason") else ""
        scores = f"val {record['val_acc']:.3f} · test {record['test_acc']:.3f}"
        return f"round {record['round']}: {_kept(record)} · {scores}{_teacher_faults(record)}{stop}"
    if node == "critique":
        return ""
    if node == "judge":
        return f"{len(update.get('critiques', []))} critiques kept"

    return ""


def _kept(record: dict[str, Any]) -> str:
    return f"chose {record['chosen']}" if record["chosen"] else "kept the previous adapter"


def _teacher_faults(record: dict[str, Any]) -> str:
    usage = record.get("teacher_usage") or {}
    skipped, faults = int(usage.get("failed_cases") or 0), int(usage.get("faults") or 0)
    return f" · teacher: {skipped} cases skipped, {faults} faults" if skipped or faults else ""


def checkpointer(connection: sqlite3.Connection) -> SqliteSaver:
    """The run's SQLite checkpointer, restoring the state's typed records (and refusing any other class)."""
    return SqliteSaver(connection, serde=JsonPlusSerializer(allowed_msgpack_modules=CHECKPOINTED_RECORDS))


def _execute(res: Resources, graph_input: LoopState | None) -> dict[str, Any]:
    """Stream the graph to its end, printing each step; the observers (graph/observe.py) watch every node."""
    with closing(sqlite3.connect(res.run.checkpoints, check_same_thread=False)) as connection:
        graph = build_graph(checkpointer(connection))
        with observing(res, dict(graph.get_state(THREAD).values)) as observation:
            stream_config = RunnableConfig(**THREAD, max_concurrency=res.config.max_concurrency, recursion_limit=10_000,
                                           callbacks=observation.callbacks)
            for chunk in graph.stream(graph_input, stream_config, context=res, stream_mode="updates"):
                for node, update in chunk.items():
                    text = _describe(node, update if isinstance(update, dict) else None)
                    if text:
                        res.console.print(f"[bold cyan]{node:>11}[/] {text}")
            observation.finished(dict(graph.get_state(THREAD).values))
        return observation.state or {}


def run(config: RunConfig, run_dir: str | Path, *, console: Console | None = None) -> dict[str, Any]:
    """Start a new run in `run_dir` (which must not hold one yet) and run it to the end."""
    run = RunDir(Path(run_dir).resolve())
    if run.root.exists() and not run.root.is_dir():
        raise RunDirectoryError(f"--run-dir {run.root} is a file; name a new or empty folder")
    if run.checkpoints.exists():
        raise RunDirectoryError(f"{run.root} already holds a run; continue it with `gaptune resume {run.root}` "
                          "or choose another --run-dir")
    res = Resources(config, run, console=console or Console())
    res.check_before_work()  # before the run directory exists: a fixed config can start in the same place
    run.root.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run.config, dump_config(config))
    return _execute(res, LoopState())


def resume(run_dir: str | Path, *, console: Console | None = None) -> dict[str, Any]:
    """Continue a run from its last checkpoint, with the config it was started with."""
    run = RunDir(Path(run_dir).resolve())
    if not run.config.exists() or not run.checkpoints.exists():
        raise RunDirectoryError(f"{run.root} holds no run to resume (expected config.yaml and checkpoints.sqlite)")
    config = load_config(run.config)
    res = Resources(config, run, console=console or Console())
    res.check_before_work()
    with closing(sqlite3.connect(run.checkpoints, check_same_thread=False)) as connection:
        graph = build_graph(checkpointer(connection))
        snapshot = graph.get_state(THREAD)
        if snapshot.next == ("judge",) and snapshot.values.get("teacher_faults"):
            # Stopped before judging with failed cases (a dead teacher): retry them. As if the round's probe
            # had just run, but keeping the critiques that succeeded, so only the failed pairs are sent again.
            graph.update_state(THREAD, {"teacher_faults": Overwrite([])}, as_node="probe")
            res.console.print(f"retrying {len(snapshot.values['teacher_faults'])} failed critiques of round "
                              f"{snapshot.values['round']}")
    if not snapshot.next and snapshot.values.get("stop_reason"):
        res.console.print(f"run already finished: {snapshot.values['stop_reason']}")
        return dict(snapshot.values)
    return _execute(res, None if snapshot.values else LoopState())
