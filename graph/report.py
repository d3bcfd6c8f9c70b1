"""metrics.json, report.md and its plots: what a run achieved, round by round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gaptune.data.atomic import write_text_atomic
from gaptune.graph.metrics import DataFileReport, RunMetrics, TeacherBill, metrics_from_state
from gaptune.graph.run_dir import RunDir


def write_metrics_and_report(res: Any, state: dict[str, Any]) -> None:
    metrics = metrics_from_state(res.config, state, res.data.report())
    res.run.write_json(res.run.metrics, metrics.model_dump(mode="json"))
    write_report(res.run, metrics)


def _plot_accuracy(metrics: RunMetrics, path: Path) -> None:
    rounds = [r.round for r in metrics.rounds]
    figure, axis = plt.subplots(figsize=(5, 3.2))
    axis.plot(rounds, [r.val_acc for r in metrics.rounds], marker="o", label="val")
    axis.plot(rounds, [r.test_acc for r in metrics.rounds], marker="s", label="test")
    axis.set_xlabel("round")
    axis.set_ylabel("accuracy")
    axis.set_xticks(rounds)
    axis.set_title(f"{metrics.task} · {metrics.selection}")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_gaps(metrics: RunMetrics, path: Path) -> None:
    rounds = [r for r in metrics.rounds if r.gaps]
    labels = sorted({gap for r in rounds for gap in r.gaps})
    figure, axis = plt.subplots(figsize=(5, 3.2))
    bottom = [0] * len(rounds)
    for label in labels:
        values = [r.gaps.get(label, 0) for r in rounds]
        axis.bar([str(r.round) for r in rounds], values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set_xlabel("round")
    axis.set_ylabel("wrong probe cases")
    axis.set_title("gap profile per round")
    if labels:
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_report(run: RunDir, metrics: RunMetrics) -> None:
    """report.md and its two plots, from metrics.json's content."""
    _plot_accuracy(metrics, run.root / "accuracy.png")
    _plot_gaps(metrics, run.root / "gaps.png")
    write_text_atomic(run.report, report_markdown(metrics))


def _cost(usage: TeacherBill) -> str:
    """Unpriced stays "n/a": an unknown cost is not a zero cost."""
    return "n/a" if usage.cost_usd is None else format(usage.cost_usd, ".4f")


def report_markdown(metrics: RunMetrics) -> str:
    """The text of report.md: the headline, a row per round, the plots, and each round's reason for its choice."""
    rounds = metrics.rounds
    lines = [f"# gaptune run: {metrics.task} ({metrics.selection})", "", f"Stop reason: {metrics.stop_reason}", ""]
    if not rounds:
        return "\n".join([*lines, "No round was recorded: the base student was never evaluated."]) + "\n"
    lines += [
        f"Test accuracy: {rounds[0].test_acc:.3f} (base) -> {rounds[-1].test_acc:.3f} (round {rounds[-1].round}). "
        "Test accuracy is measured every round and never used for a decision.",
        "",
        "| round | val | test | train size | chosen | gaps targeted | teacher calls | tokens in/out | cost (USD) "
        "| cases skipped / faults |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rounds:
        gaps = ", ".join(f"{g} {n}" for g, n in r.gaps.items()) or "-"
        usage = r.teacher_usage
        lines.append(
            f"| {r.round} | {r.val_acc:.3f} | {r.test_acc:.3f} | {r.train_size} | {r.chosen or '-'} | "
            f"{gaps} | {int(usage.calls)} | {int(usage.tokens_in)}/{int(usage.tokens_out)} | "
            f"{_cost(usage)} | {int(usage.failed_cases)} / {int(usage.faults)} |"
        )
    lines += ["", "![accuracy per round](accuracy.png)", "", "![gap profile per round](gaps.png)", "",
              "Round r's gaps are the errors of round r-1's model on the probe split: what round r's data targeted.",
              "Ask `gaptune trace RUN_DIR --sample ID` why any sample was trained on."]
    for r in rounds[1:]:
        lines.append(f"\n**Round {r.round}**: {r.why}")
    return "\n".join([*lines, *_data_lines(metrics.data)]) + "\n"


def _data_lines(files: dict[str, DataFileReport]) -> list[str]:
    """The user's data files: what was read and what was skipped, so no skipped row goes unseen."""
    if not files:
        return []
    lines = ["", "## Data", "", "| file (config key) | samples | skipped |", "|---|---|---|"]
    lines += [f"| {f.file} ({key}) | {f.samples} | {f.skipped} |" for key, f in files.items()]
    for key, f in files.items():
        shown = f.problems
        if shown:
            more = f.skipped - len(shown)
            lines += ["", f"Skipped in {key}:", *(f"- {problem}" for problem in shown)]
            lines += [f"- ... and {more} more (all of them in trace.jsonl)"] if more > 0 else []
        lines += [f"\nNote: {note}" for note in f.notes]
    return lines
