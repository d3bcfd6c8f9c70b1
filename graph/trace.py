"""The decision trace: one JSON line per agent decision, in the run directory, and its readable views.

Each event has a deterministic `event_id` (round/node/key). A node that is
re-run after a crash writes its events again; readers keep the last event per
id, so a resumed run's trace reads exactly like an uninterrupted one.

A finished run's trace may be archived gzipped beside it (`trace.jsonl.gz`, as
the committed bench runs whose selection lists a whole pool are): readers open
it as is, and a run whose trace is archived refuses to record more events.

`render_*` turn the explanations of `gaptune.graph.explain` into rich
renderables for `gaptune trace`; `--json` prints the same explanations as JSON.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gaptune.data.errors import RunDirectoryError
from gaptune.data.live_events import TraceRecorded, announce
from gaptune.graph.events import EVENT, TraceEvent

if TYPE_CHECKING:
    from gaptune.graph.explain import (
        CandidateResult,
        CaseRound,
        Effect,
        RoundExplanation,
        RunOverview,
        SampleSelection,
    )

_lock = threading.Lock()


class Trace:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, event: TraceEvent) -> None:
        if archived(self.path).exists():
            raise RunDirectoryError(f"{archived(self.path)}: this run's trace is archived; gunzip it to resume the run")
        line = event.model_dump_json()
        with _lock, self.path.open("a") as handle:
            handle.write(line + "\n")
            handle.flush()
        announce(TraceRecorded(event_id=event.event_id, node=event.node or event.kind, agent=event.agent))

    def events(self) -> list[TraceEvent]:
        return read_trace(self.path)


def read_trace(path: Path) -> list[TraceEvent]:
    """Events in first-seen order, the last write of each event_id winning; a torn last line is ignored.

    A line that is not an event of this gaptune (a run directory written by an
    older version) raises `RunDirectoryError` naming the file and line.
    """
    if not path.exists() and archived(path).exists():
        path = archived(path)
    if not path.exists():
        return []
    lines = list(_lines(path))
    latest: dict[str, TraceEvent] = {}
    for number, line in enumerate(lines, start=1):
        try:
            event = EVENT.validate_json(line)
        except ValidationError as error:
            if number == len(lines) and any(e["type"] == "json_invalid" for e in error.errors()):
                break  # the write a kill interrupted
            raise RunDirectoryError(
                f"{path}:{number}: not a trace event of this gaptune version (a run directory of an older "
                f"version? start a new run): {error.errors()[0]['msg']}") from None
        latest[event.event_id] = event
    return list(latest.values())


def archived(path: Path) -> Path:
    """Where a trace is kept once archived: gzipped, beside its plain name."""
    return path.with_name(path.name + ".gz")


def _lines(path: Path) -> Iterator[str]:
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as handle:
        for line in handle:
            if line.strip():
                yield line


# How many cases behind a gap `--sample` lists before summing up the rest (`--json` lists all).
SHOWN_CASES = 5


def _step(wrong_step: int | None) -> str:
    return "?" if wrong_step is None else str(wrong_step + 1)


def _gaps(gaps: dict[str, int]) -> str:
    return ", ".join(f"{gap or '(none)'} {count}" for gap, count in gaps.items()) or "-"


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return f"{_acc(before)} -> {_acc(after)}"
    return f"{before:.3f} -> {after:.3f} ({after - before:+.3f})"


def _candidates(candidates: list[CandidateResult]) -> str:
    return "; ".join(f"{c.candidate} ({c.train_size} samples, val {c.val_acc:.3f})" + (", kept" if c.chosen else "")
                     for c in candidates) or "-"


def _effect_lines(effect: Effect | None, round_: int) -> list[Text]:
    if effect is None:
        return [Text(f"effect: none yet: the run stopped before round {round_} trained an adapter", style="yellow")]
    lines = [Text.assemble(("effect: ", "bold"), f"entered round {effect.round}'s candidate adapter(s): ",
                           _candidates(effect.candidates))]
    if not effect.finished:
        lines.append(Text(f"  round {effect.round} has not chosen an adapter yet (the run stopped mid-round)",
                          style="yellow"))
    elif effect.chosen is None:
        lines.append(Text(f"  kept: the previous adapter (no candidate of round {effect.round} matched its val "
                          f"accuracy); val accuracy {_change(effect.val_before, effect.val_after)}"))
    else:
        kept = any(c.chosen for c in effect.candidates)
        lines.append(Text(f"  kept: {effect.chosen}" + ("" if kept else " (an adapter without this sample)")
                          + f"; val accuracy {_change(effect.val_before, effect.val_after)} over round {effect.round}"))
    if effect.also_trained_in:
        lines.append(Text("  also in the training sets of round(s) " + ", ".join(map(str, effect.also_trained_in))))
    return lines


def render_sample(sample_id: str, selections: list[SampleSelection]) -> RenderableType:
    """Each selection of a pool sample as a panel: why it was chosen, the cases behind it, and its effect."""
    panels = []
    for s in selections:
        if s.gap:
            why = Text.assemble("selected for gap ", (s.gap, "cyan"), f" ({s.gap_errors} wrong probe cases) by query ",
                                repr(s.query), f"\n{s.method} score {s.score:.4f}, rank {s.rank}")
        else:
            why = Text(f"selected by {s.strategy} (no gap: this arm does not read errors), rank {s.rank}")
        lines: list[Text] = [why]
        if s.cases:
            lines.append(Text(f"cases behind the gap ({len(s.cases)}):", style="bold"))
            for c in s.cases[:SHOWN_CASES]:
                lines.append(Text.assemble(f"  {c.case}: {c.teacher} says step {_step(c.wrong_step)} lacks ",
                                           (c.missing_skill, "cyan"), f": {c.explanation}"))
            if len(s.cases) > SHOWN_CASES:
                lines.append(Text(f"  ... and {len(s.cases) - SHOWN_CASES} more (--json lists all)", style="dim"))
        lines += _effect_lines(s.effect, s.round)
        panels.append(Panel(Text("\n").join(lines), title=f"{sample_id} · round {s.round} ({s.strategy})",
                            title_align="left"))
    return Group(*panels)


def render_case(case_id: str, rounds: list[CaseRound]) -> RenderableType:
    """Per round, a table of what each teacher said about the case, the judge's pick, and the student's output."""
    parts: list[RenderableType] = []
    for r in rounds:
        table = Table(title=f"case {case_id} · round {r.round}", title_justify="left", show_lines=False)
        for column in ("teacher", "step", "missing skill", "gap", "kept", "explanation"):
            table.add_column(column)
        for c in r.critiques:
            if c.fault is not None:
                table.add_row(Text(c.teacher), "-", Text(f"fault: {c.fault}", style="red"), "-", "", Text(c.explanation))
            else:
                table.add_row(Text(c.teacher + (f" ({c.model})" if c.model else "")), _step(c.wrong_step),
                              Text(c.missing_skill or "-"), Text(c.gap or "-"), "yes" if c.kept else "",
                              Text(c.explanation))
        parts.append(Text(f"student output: {r.student_output or '-'}"))
        parts.append(table)
        if r.judge is not None:
            parts.append(Text(f"judge kept {r.judge.teacher}: {r.judge.reason}"))
    return Group(*parts)


def render_round(r: RoundExplanation) -> RenderableType:
    """One round's decisions, in the loop's order, one line each."""
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    if r.probe is not None:
        table.add_row("probe", f"{r.probe.wrong_cases} of {r.probe.samples} wrong (accuracy {r.probe.accuracy:.3f})")
        faults = f", {r.teacher_faults} given up by the teacher" if r.teacher_faults else ""
        judged = f", {r.judged} judged among several critics" if r.judged else ""
        table.add_row("critiques", f"{r.critiques} answered{faults}{judged}")
    if r.round > 0:
        source = f" (from {r.gap_source})" if r.gap_source else ""
        table.add_row("gaps", Text(_gaps(r.gaps) + source))
        if r.diagnosis and r.diagnosis.get("total"):
            table.add_row("diagnosis", f"{r.diagnosis['matched']} of {r.diagnosis['total']} gaps match the gold step's skill")
    if r.selection is not None:
        sel = r.selection
        short = f"; short: {_gaps(sel.shortfall)}" if sel.shortfall else ""
        alloc = f" (budget {_gaps(sel.allocation)})" if sel.allocation else ""
        table.add_row("selection", Text(f"{sel.selected} samples by {sel.strategy}{alloc}{short}; "
                                        f"{sel.excluded} used before were excluded"))
    if r.candidates:
        table.add_row("candidates", Text(_candidates(r.candidates)))
    if r.choice is not None:
        if r.round == 0:
            table.add_row("base", f"val {r.choice.val_acc:.3f} · test {r.choice.test_acc:.3f}")
        else:
            table.add_row("chosen", Text(r.choice.why))
            table.add_row("val", _change(r.val_before, r.choice.val_acc))
            table.add_row("test", f"{r.choice.test_acc:.3f} (reported only, never used for a decision)")
            if r.choice.stop_reason:
                table.add_row("stop", Text(r.choice.stop_reason))
    elif r.round > 0:
        table.add_row("status", Text("not finished: the run stopped in this round", style="yellow"))
    return Panel(table, title=f"round {r.round}", title_align="left")


def _kept(r: RoundExplanation) -> str:
    """The adapter a round kept, with the candidates it beat (when there were several)."""
    if r.round == 0:
        return "base"
    if r.choice is None:
        return "(unfinished)"
    others = [f"{c.candidate} {c.val_acc:.3f}" for c in r.candidates if not c.chosen]
    return (r.choice.chosen or "-") + (f" (over {', '.join(others)})" if others else "")


def render_run(overview: RunOverview) -> RenderableType:
    """The run a round per row, then why it stopped and what to ask next."""
    table = Table(title="decision trace", title_justify="left")
    for column, justify in (("round", "right"), ("wrong", "right"), ("gaps", "left"), ("selected", "right"),
                            ("kept", "left"), ("val", "right"), ("test", "right")):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in overview.rounds:
        table.add_row(
            str(r.round),
            "-" if r.probe is None else f"{r.probe.wrong_cases}/{r.probe.samples}",
            Text("\n".join(f"{gap or '(none)'} {n}" for gap, n in r.gaps.items()) if r.round and r.gaps else "-"),
            "-" if r.selection is None else str(r.selection.selected),
            Text(_kept(r)),
            _acc(r.choice.val_acc if r.choice else None),
            _acc(r.choice.test_acc if r.choice else None),
        )
    lines: list[RenderableType] = [table, Text(f"stop: {overview.stop_reason or 'not finished (resume the run)'}")]
    if overview.rows_skipped:
        lines.append(Text(f"data: {overview.rows_skipped} bad rows or duplicate ids skipped while loading (gaptune report)",
                          style="yellow"))
    lines.append(Text("ask: --round N (every decision of a round), --sample ID (why a pool sample was trained on), "
                      "--case ID (what the teachers said about a probe case), --json (any view as JSON)", style="dim"))
    return Group(*lines)
