"""efficiency.png: test accuracy against budget, one panel per student."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from gaptune.experiments.results import Finished
from gaptune.experiments.spec import REFERENCE_ARM, EfficiencySpec
from gaptune.experiments.statistics import mean_std


def plot(spec: EfficiencySpec, rows: list[Finished], path: Path) -> None:
    """Test accuracy against budget, one panel per student, the base student as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    students = list(spec.students)
    figure, axes = plt.subplots(1, len(students), figsize=(5 * len(students), 3.6), squeeze=False)
    for axis, student in zip(axes[0], students, strict=True):
        mine = [r for r in rows if r.cell.student == student]
        for arm in dict.fromkeys([*spec.budget_arms, *spec.arms, *spec.first_seed_arms]):
            points = defaultdict(list)
            for r in mine:
                if r.cell.arm == arm:
                    points[r.cell.budget].append(r.test)
            if not points:
                continue
            budgets = sorted(points)
            means = [mean_std(points[b])[0] for b in budgets]
            errors = [mean_std(points[b])[1] for b in budgets]
            axis.errorbar(budgets, means, yerr=errors, marker="o", capsize=3, label=arm,
                          linestyle="-" if len(budgets) > 1 else "none")
        bases = [r.base_test for r in mine if r.cell.arm == REFERENCE_ARM]
        if bases:
            axis.axhline(mean_std(bases)[0], color="grey", linestyle="--", label="base")
        axis.set_xscale("log", base=2)
        axis.set_title(f"{student} · {spec.task}")
        axis.set_xlabel("pool budget (samples)")
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
    for axis in axes[0]:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

