"""The pre-registered contrasts of a spec, each with the hierarchical bootstrap over seeds and items: contrasts.md.

A contrast is `arm - minus` on test accuracy, item by item on the same test
items, for each student; one marked `across_students` is summed over the
two students instead (the swap test's student x selection-source
interaction: own - swap on both, predicted positive). Every contrast the
spec lists is reported with its mean, its 95% interval and each seed's own
value, whatever its sign, and the report says how many were looked at.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from gaptune.experiments.results import Finished
from gaptune.experiments.spec import ContrastSpec, EfficiencySpec
from gaptune.experiments.statistics import Contrast, hierarchical_bootstrap, paired_differences

Correct = dict[int, list[bool]]  # seed -> per-item correctness on the test items


def _by_arm(spec: EfficiencySpec, rows: list[Finished]) -> dict[str, dict[str, Correct]]:
    """student -> arm -> seed -> test correctness at the spec's main budget; "base" is the base student."""
    table: dict[str, dict[str, Correct]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r.cell.budget != spec.budget:
            continue
        table[r.cell.student][r.cell.arm][r.cell.seed] = r.test_correct
        table[r.cell.student]["base"][r.cell.seed] = r.base_correct
    return table


def contrast_differences(spec: EfficiencySpec, rows: list[Finished], contrast: ContrastSpec,
                         ) -> dict[str, dict[int, np.ndarray]]:
    """Per student (or "both" for an across-students contrast): seed -> per-item differences, seeds both arms have."""
    table = _by_arm(spec, rows)
    per_student = {student: paired_differences(table[student][contrast.arm], table[student][contrast.minus])
                   for student in spec.students
                   if set(table[student][contrast.arm]) & set(table[student][contrast.minus])}
    if not contrast.across_students:
        return per_student
    if len(per_student) != len(spec.students):
        return {}
    seeds = sorted(set.intersection(*(set(d) for d in per_student.values())))
    return {"both": {seed: np.sum([d[seed] for d in per_student.values()], axis=0) for seed in seeds}} if seeds else {}


def measured_contrasts(spec: EfficiencySpec, rows: list[Finished]) -> list[tuple[ContrastSpec, str, Contrast]]:
    """Every listed contrast that has runs, per student: (contrast, student or "both", the bootstrap's result)."""
    found = []
    for contrast in spec.contrasts:
        for student, differences in contrast_differences(spec, rows, contrast).items():
            found.append((contrast, student, hierarchical_bootstrap(differences, resamples=spec.bootstrap_resamples)))
    return found


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def contrasts_markdown(spec: EfficiencySpec, rows: list[Finished]) -> str:
    measured = measured_contrasts(spec, rows)
    listed = sum(1 if c.across_students else len(spec.students) for c in spec.contrasts)
    lines = [f"Pre-registered contrasts at budget {spec.budget}: test accuracy, points; 95% intervals of the "
             f"hierarchical bootstrap ({spec.bootstrap_resamples:,} resamples of seeds, then of test items within each "
             f"seed). {len(measured)} of the {listed} registered contrasts have runs so far; all are shown, whatever "
             "their sign.", "",
             "| contrast | student | mean [95% CI] | seeds | per seed |", "|---|---|---|---|---|"]
    for contrast, student, result in measured:
        name = f"{contrast.arm} - {contrast.minus}" + (" (primary)" if contrast.primary else "")
        seeds = ", ".join(f"{seed}: {_points(value)}" for seed, value in sorted(result.per_seed.items()))
        lines.append(f"| {name} | {student} | {_points(result.mean)} [{_points(result.low)}, {_points(result.high)}] | "
                     f"{len(result.per_seed)} | {seeds} |")
    primary = [(c, s, r) for c, s, r in measured if c.primary]
    if primary:
        _, _, result = primary[0]
        verdict = "positive, the interval excludes 0" if result.low > 0 else (
            "negative, the interval excludes 0" if result.high < 0 else "the interval includes 0")
        lines += ["", f"Primary endpoint: {_points(result.mean)} points [{_points(result.low)}, "
                      f"{_points(result.high)}] over {len(result.per_seed)} seeds: {verdict} "
                      f"(predicted positive)."]
    return "\n".join(lines) + "\n"
