"""`gaptune compare RUN_DIR...`: several finished runs side by side, for the arms a user runs by hand.

Per round the val and test accuracy of every run; the composition of each
run's selection by the skills its samples teach; the teacher's bill; and one
plot of accuracy per round. It reads each run's metrics.json and config.yaml
and nothing else, except the pool file of a run on a user's pool (the skills
of the selected samples live there); the world's pool samples are rebuilt
from their ids.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from pydantic import BaseModel
from rich.console import Group, RenderableType
from rich.table import Table

from gaptune.data.atomic import write_bytes_atomic
from gaptune.data.errors import RunDirectoryError
from gaptune.data.loaders import load_samples
from gaptune.experiments.results import composition
from gaptune.graph.config import load_config
from gaptune.graph.metrics import RoundMetrics, read_metrics
from gaptune.graph.run_dir import RunDir

# Skills shown per run in the composition table; the rest are summed up as "other".
TOP_SKILLS = 8


class ComparedRun(BaseModel):
    """One run as `compare` sees it."""

    label: str
    task: str
    selection: str
    stop_reason: str | None
    rounds: list[RoundMetrics]
    skills: dict[str, int]
    selected: int
    teacher_calls: int
    tokens: int
    cost_usd: float | None


def _skills(run: RunDir, used: list[str]) -> Counter[str]:
    config = load_config(run.config)
    if config.pool.path is None:
        return composition(used, config.world_seed)[0]
    chosen = set(used)
    skills: Counter[str] = Counter()
    for sample in load_samples(config.pool.path, image_root=config.pool.image_root, strict=False).samples:
        if sample.id in chosen:
            skills.update(sample.skills)
    return skills


def load_run(path: Path) -> ComparedRun:
    """A finished run's rounds, selection skills and teacher bill; an error naming the directory otherwise."""
    run = RunDir(path)
    if not run.metrics.exists() or not run.config.exists():
        raise RunDirectoryError(f"{path}: not a finished gaptune run (expected metrics.json and config.yaml; "
                                f"an unfinished run continues with `gaptune resume {path}`)")
    metrics = read_metrics(run.metrics)
    usages = [r.teacher_usage for r in metrics.rounds]
    costs = [u.cost_usd for u in usages if u.cost_usd is not None]
    return ComparedRun(
        label=path.name, task=metrics.task, selection=metrics.selection, stop_reason=metrics.stop_reason,
        rounds=metrics.rounds, skills=dict(_skills(run, metrics.used)), selected=len(metrics.used),
        teacher_calls=int(sum(u.calls for u in usages)), tokens=int(sum(u.tokens_in + u.tokens_out for u in usages)),
        cost_usd=sum(costs) if costs else None,
    )


def _labels(runs: list[ComparedRun]) -> list[str]:
    """Column labels: the directory names, told apart by position when two are the same."""
    counts = Counter(r.label for r in runs)
    return [f"{i + 1}:{r.label}" if counts[r.label] > 1 else r.label for i, r in enumerate(runs)]


def render_comparison(runs: list[ComparedRun]) -> RenderableType:
    labels = _labels(runs)
    accuracy = Table(title="accuracy per round (val / test)", title_justify="left")
    accuracy.add_column("round", justify="right")
    for label, r in zip(labels, runs, strict=True):
        accuracy.add_column(f"{label}\n{r.selection}", justify="right")
    for round_ in range(max(len(r.rounds) for r in runs)):
        cells = [f"{r.rounds[round_].val_acc:.3f} / {r.rounds[round_].test_acc:.3f}" if round_ < len(r.rounds)
                 else "-" for r in runs]
        accuracy.add_row(str(round_), *cells)
    accuracy.add_row("stop", *[r.stop_reason or "-" for r in runs])

    shown = [skill for skill, _ in sum((Counter(r.skills) for r in runs), Counter()).most_common(TOP_SKILLS)]
    skills = Table(title="selection by skill (share of each run's selected samples; a sample counts for each skill "
                         "it teaches)", title_justify="left")
    skills.add_column("skill")
    for label in labels:
        skills.add_column(label, justify="right")
    for skill in shown:
        skills.add_row(skill, *[f"{r.skills.get(skill, 0) / r.selected:.0%}" if r.selected else "-" for r in runs])
    skills.add_row("other", *[f"{sum(n for s, n in r.skills.items() if s not in shown) / r.selected:.0%}"
                              if r.selected else "-" for r in runs])
    skills.add_row("samples", *[str(r.selected) for r in runs])

    cost = Table(title="teacher cost", title_justify="left")
    for column in ("run", "calls", "tokens", "cost (USD)"):
        cost.add_column(column, justify="left" if column == "run" else "right")
    for label, r in zip(labels, runs, strict=True):
        cost.add_row(label, str(r.teacher_calls), str(r.tokens), "n/a" if r.cost_usd is None else f"{r.cost_usd:.4f}")
    return Group(accuracy, skills, cost)


def plot_comparison(runs: list[ComparedRun], path: Path) -> None:
    """Val (solid) and test (dashed) accuracy per round, one colour per run."""
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for label, r in zip(_labels(runs), runs, strict=True):
        rounds = [x.round for x in r.rounds]
        (line,) = axis.plot(rounds, [x.val_acc for x in r.rounds], marker="o", label=f"{label} val")
        axis.plot(rounds, [x.test_acc for x in r.rounds], marker="s", linestyle="--", color=line.get_color(),
                  label=f"{label} test")
    axis.set_xlabel("round")
    axis.set_ylabel("accuracy")
    axis.set_xticks(sorted({x.round for r in runs for x in r.rounds}))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, dpi=110, format="png")
    plt.close(figure)
    write_bytes_atomic(path, image.getvalue())
