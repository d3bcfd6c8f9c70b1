"""The markdown and CSV a spec's finished runs are written as: results.csv, table.md, composition.md, contrasts.md,
localisation.md, students.md."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gaptune.data.atomic import write_text_atomic
from gaptune.data.sample import Sample
from gaptune.data.world.families import POOL_FAMILIES
from gaptune.data.world.world import world_sample
from gaptune.experiments.contrasts import contrasts_markdown
from gaptune.experiments.localisation import collect_localisation, localisation_markdown
from gaptune.experiments.plot import plot
from gaptune.experiments.results import Finished, collect, composition
from gaptune.experiments.spec import REFERENCE_ARM, TEMPLATE_FAMILY, EfficiencySpec
from gaptune.experiments.statistics import hierarchical_bootstrap, mean_std, paired_differences
from gaptune.graph.config import load_config


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _signed(value: float) -> str:
    return f"{value * 100:+.1f}"



def results_csv(rows: list[Finished]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["student", "budget", "arm", "seed", "base_test", "test", "val", "pool_samples",
                     "diagnosis_matched", "diagnosis_total", "stop_reason", "wall_s"])
    for r in rows:
        writer.writerow([r.cell.student, r.cell.budget, r.cell.arm, r.cell.seed, _fmt(r.base_test), _fmt(r.test),
                         _fmt(r.val), len(r.used), r.diagnosis.get("matched", ""), r.diagnosis.get("total", ""),
                         r.stop_reason, "" if r.wall_s is None else f"{r.wall_s:.0f}"])
    return buffer.getvalue()


def _groups(rows: list[Finished]) -> dict[tuple[str, int], dict[str, dict[int, Finished]]]:
    """(student, budget) -> arm -> seed -> run; the base student appears as arm "base"."""
    groups: dict[tuple[str, int], dict[str, dict[int, Finished]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        groups[r.cell.student, r.cell.budget][r.cell.arm][r.cell.seed] = r
    return groups


Runs = dict[str, dict[int, Finished]]  # arm -> seed -> run


def _arm_scores(by_arm: Runs, arm: str) -> tuple[list[float], dict[int, list[bool]]]:
    """An arm's test accuracies and per-item correctness by seed; "base" is the base student of the reference runs."""
    if arm == "base":
        runs = by_arm.get(REFERENCE_ARM, {})
        return [r.base_test for r in runs.values()], {seed: r.base_correct for seed, r in runs.items()}
    runs = by_arm.get(arm, {})
    return [r.test for r in runs.values()], {seed: r.test_correct for seed, r in runs.items()}


def _delta(by_arm: Runs, arm: str, correct: dict[int, list[bool]], resamples: int) -> str:
    """The difference to the reference arm on the same seeds and items, in points, with the 95% interval of the
    hierarchical bootstrap (seeds, then items within each)."""
    reference = {seed: r.test_correct for seed, r in by_arm.get(REFERENCE_ARM, {}).items()}
    if arm == REFERENCE_ARM or not set(correct) & set(reference):
        return "-"
    result = hierarchical_bootstrap(paired_differences(correct, reference), resamples=resamples)
    return f"{_signed(result.mean)} [{_signed(result.low)}, {_signed(result.high)}]"


def table_markdown(spec: EfficiencySpec, rows: list[Finished]) -> str:
    """Mean ± std of test accuracy per arm, the paired difference to error-driven with its 95% interval.

    "gap closed" is (arm - base) / (ceiling - base): base over the same seeds
    as the cell's error-driven runs, the ceiling arm at the main budget.
    """
    run_time = sum(r.wall_s or 0.0 for r in rows)
    lines = [f"Target `{spec.task}` · pool {spec.pool_size:,} · one round · test accuracy on the same "
             f"{len(rows[0].test_correct) if rows else 0} items in every run · {len(rows)} runs, "
             f"{run_time / 60:.0f} min of run time in all (student builds included) on this machine", ""]
    groups = _groups(rows)
    for (student, budget), arms in sorted(groups.items()):
        reference = arms.get(REFERENCE_ARM, {})
        ceiling_runs = groups.get((student, spec.budget), {}).get("ceiling", {})
        span = None
        if ceiling_runs and reference:
            base_mean = mean_std([r.base_test for r in reference.values()])[0]
            span = (base_mean, mean_std([r.test for r in ceiling_runs.values()])[0] - base_mean)
        lines += [f"### {student} ({spec.students[student]}), budget {budget}", "",
                  "| arm | test mean ± std | seeds | Δ vs error-driven (points) [95% CI, seeds and items] | gap closed | "
                  "stop reasons |",
                  "|---|---|---|---|---|---|"]
        ordered = ["base", *[a for a in [*spec.arms, *spec.first_seed_arms, *spec.budget_arms] if a in arms]]
        for arm in dict.fromkeys(ordered):
            scores, correct = _arm_scores(arms, arm)
            if not scores:
                continue
            stops = "-" if arm == "base" else "; ".join(sorted({r.stop_reason for r in arms[arm].values()}))
            mean, std = mean_std(scores)
            closed = f"{(mean - span[0]) / span[1]:.0%}" if span and span[1] > 0 else "-"
            lines.append(f"| {'**' + arm + '**' if arm == REFERENCE_ARM else arm} | {_fmt(mean)} ± {_fmt(std)} | "
                         f"{len(scores)} | {_delta(arms, arm, correct, spec.bootstrap_resamples)} | {closed} | {stops} |")
        lines.append("")
    return "\n".join(lines)


def summary_markdown(spec: EfficiencySpec, rows: list[Finished]) -> str:
    """The main budget, students side by side: test mean ± std (seeds) and the paired Δ to error-driven."""
    groups = _groups(rows)
    students = [s for s in spec.students if (s, spec.budget) in groups]
    header = "| arm | " + " | ".join(f"{s}: test (seeds) | {s}: Δ vs error-driven [95% CI]" for s in students) + " |"
    lines = [header, "|---|" + "---|---|" * len(students)]
    arms = ["base", *dict.fromkeys([*spec.arms, *spec.first_seed_arms])]
    for arm in arms:
        cells = []
        for student in students:
            by_arm = groups[student, spec.budget]
            scores, correct = _arm_scores(by_arm, arm)
            if not scores:
                cells += ["-", "-"]
                continue
            mean, std = mean_std(scores)
            delta = _delta(by_arm, arm, correct, spec.bootstrap_resamples)
            cells += [f"{_fmt(mean)} ± {_fmt(std)} ({len(scores)})", delta]
        if any(cell != "-" for cell in cells):
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def composition_markdown(spec: EfficiencySpec, rows: list[Finished]) -> str:
    """Share per skill and per family of each arm's selection (all seeds pooled), and the error profiles."""
    template = TEMPLATE_FAMILY[spec.task]
    world_seed = load_config(None, spec.overrides).world_seed
    lines = [f"Selections at each budget, all seeds pooled. `{template}` is the pool family whose question "
             f"template is closest to `{spec.task}`'s.", ""]
    for (student, budget), arms in sorted(_groups(rows).items()):
        lines += [f"### {student}, budget {budget}", "",
                  "| arm | samples | skills (share of samples teaching it) | families (share) | "
                  f"`{template}` share |", "|---|---|---|---|---|"]
        for arm, seeds in arms.items():
            used = [sample_id for r in seeds.values() for sample_id in r.used]
            if not used:
                continue
            skills, families = composition(used, world_seed)
            skill_text = ", ".join(f"{k} {v / len(used):.0%}" for k, v in skills.most_common(5))
            family_text = ", ".join(f"{k} {v / len(used):.0%}" for k, v in families.most_common(5))
            lines.append(f"| {arm} | {len(used) // len(seeds)} | {skill_text} | {family_text} | "
                         f"{families.get(template, 0) / len(used):.0%} |")
        lines.append("")
    lines += ["### Gap profiles (the error-driven arm's round-1 gaps, share of wrong probe cases)", "",
              "| student | seed | wrong cases | gaps | diagnosis = true label |", "|---|---|---|---|---|"]
    for r in rows:
        if r.cell.arm != REFERENCE_ARM or r.cell.budget != spec.budget:
            continue
        total = sum(r.gaps.values()) or 1
        gaps = ", ".join(f"{g} {n / total:.0%}" for g, n in sorted(r.gaps.items(), key=lambda kv: -kv[1]))
        matched, scored = r.diagnosis.get("matched", 0), r.diagnosis.get("total", 0)
        lines.append(f"| {r.cell.student} | {r.cell.seed} | {sum(r.gaps.values())} | {gaps} | "
                     f"{matched}/{scored} |")
    return "\n".join(lines) + "\n"



def write_outputs(spec: EfficiencySpec, out: Path, *, wall_s: float | None = None) -> list[Finished]:
    rows = collect(spec, out)
    write_text_atomic(out / "results.csv", results_csv(rows))
    header = f"Wall time of this invocation on this machine: {wall_s:.0f} s\n\n" if wall_s is not None else ""
    body = f"## Budget {spec.budget}, both students\n\n{summary_markdown(spec, rows)}\n## Every cell\n\n" \
        f"{table_markdown(spec, rows)}" if rows else "no finished run yet\n"
    write_text_atomic(out / "table.md", header + body)
    write_text_atomic(out / "composition.md", composition_markdown(spec, rows) if rows else "no finished run yet\n")
    if spec.contrasts:
        write_text_atomic(out / "contrasts.md", contrasts_markdown(spec, rows))
    localised = collect_localisation(spec, out)
    if localised:
        write_text_atomic(out / "localisation.md", localisation_markdown(localised))
    if rows:
        plot(spec, rows, out / "efficiency.png")
    return rows


def student_skills_markdown(spec: EfficiencySpec, per_family: int, overrides: Sequence[str],
                            evaluate: Callable[[list[str], list[Sample]], Any]) -> str:
    """Per-skill accuracy of each student (seed 0) on a slice of every pool family: their uneven skills."""
    samples = []
    counts: Counter[str] = Counter()
    index = 0
    while min((counts[f] for f in POOL_FAMILIES), default=per_family) < per_family:
        sample = world_sample(0, "pool", index)
        if counts[sample.task] < per_family:
            samples.append(sample)
            counts[sample.task] += 1
        index += 1
    evaluations = {name: evaluate([f"student.tiny.mix={mix}", "student.tiny.seed=0", *overrides], samples)
                   for name, mix in spec.students.items()}
    skills = sorted({skill for e in evaluations.values() for skill in e.per_skill})
    lines = [f"Per-skill accuracy on {per_family} pool samples of each family (seed-0 students)", "",
             "| skill | " + " | ".join(f"{n} ({spec.students[n]})" for n in evaluations) + " |",
             "|---|" + "---|" * len(evaluations)]
    for skill in skills:
        lines.append(f"| {skill} | " + " | ".join(_fmt(e.per_skill[skill].accuracy) if skill in e.per_skill else "-"
                                                   for e in evaluations.values()) + " |")
    return "\n".join(lines) + "\n"
