"""`gaptune bench pilot`: do the two base students fail the crossover target at *different* steps?

A crossover table is only worth running when the students' errors differ
(DESIGN.md rule 12): the first world's two students both missed compare-counts
at the counts, so error-driven chose the same data for both. This pilot builds
each base student of a pre-registered spec (cached, one at a time: two builds at
once ran ~6x slower) and reports, on the target's probe split: the parse rate,
the histogram of blamed steps by the world's truth (first step that differs
from the gold rationale) and by each configured teacher, and teacher-forced
accuracy per step. It then checks the go-criteria written in the spec before
any student was built. It never looks at an arm, at val or at test.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console

from gaptune.agents.critics import Critic, build_critics
from gaptune.agents.reference_critic import first_wrong_step
from gaptune.agents.teacher_config import WorldBackend
from gaptune.agents.world_teacher import world_critic
from gaptune.data.atomic import write_text_atomic
from gaptune.data.attempt import Attempt
from gaptune.data.errors import ConfigError
from gaptune.data.sample import Sample
from gaptune.data.world.world import DRAW_STRIDE, TASK_VERSIONS, TASKS, pool, task_split
from gaptune.experiments.localisation import blamed_skill
from gaptune.experiments.runner import world_teacher
from gaptune.experiments.spec import TeacherRecipe
from gaptune.graph.config import RunConfig, load_config
from gaptune.training.config import MixName
from gaptune.training.evaluate import evaluate
from gaptune.training.fit import resolve_device
from gaptune.training.lora_trainer import load_adapted
from gaptune.training.teacher_forcing import ANSWER_STEP, forced_step_correct
from gaptune.training.tiny_student import build_tiny_student

# Pool families whose accuracy says whether a student has each skill outside the target's format.
SKILL_FAMILIES = ("find-big", "size-at", "colour-at", "count-colour", "count-shape")
SKILL_FAMILY_SAMPLES = 50


class GoCriteria(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_parse_rate: float = Field(ge=0, le=1)
    min_wrong_cases: int = Field(ge=1)
    min_own_rare_share: float = Field(ge=0, le=1)
    max_other_rare_share: float = Field(ge=0, le=1)


class PilotSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = Field(ge=0)
    student_overrides: list[str] = Field(default_factory=list)
    probe_size: int = Field(ge=1)
    go_criteria: GoCriteria


class CrossoverSpec(BaseModel):
    """The pre-registration: the pilot is run from it; `table` and `analysis` are the frozen plan of the table."""

    model_config = ConfigDict(extra="forbid")

    task: str
    students: dict[str, MixName]
    rare_skill: dict[str, str]
    teacher: TeacherRecipe | None = None
    pilot: PilotSettings
    table: dict[str, Any]
    analysis: dict[str, Any]

    @model_validator(mode="after")
    def _two_mirrored_students(self) -> CrossoverSpec:
        if self.task not in TASKS:
            raise ValueError(f"task: unknown world task {self.task!r}; expected one of {', '.join(TASKS)}")
        if len(self.students) != 2:
            raise ValueError("students: a crossover needs exactly two students")
        if set(self.rare_skill) != set(self.students):
            raise ValueError("rare_skill: name the rare skill of each student, and of no other")
        if len(set(self.rare_skill.values())) != 2:
            raise ValueError("rare_skill: the two students must be rare in different skills")
        return self

    def other(self, student: str) -> str:
        return next(name for name in self.students if name != student)


def load_crossover_spec(path: Path) -> CrossoverSpec:
    try:
        return CrossoverSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except FileNotFoundError as error:
        raise ConfigError(f"crossover spec {str(path)!r} does not exist") from error
    except (yaml.YAMLError, ValueError) as error:
        raise ConfigError(f"crossover spec {str(path)!r}: {error}") from error


def student_config(spec: CrossoverSpec, student: str, extra: Sequence[str] = ()) -> RunConfig:
    """The run config of a pilot student; its seed sets its initialisation, its pretraining world and the probe draw."""
    seed = spec.pilot.seed
    return load_config(None, [
        f"task.world={spec.task}", f"task.draw={seed}", f"seed={seed}", f"task.probe_size={spec.pilot.probe_size}",
        f"student.tiny.mix={spec.students[student]}", f"student.tiny.seed={seed}", f"student.tiny.world_seed={seed}",
        *spec.pilot.student_overrides, *extra,
    ])


def teacher_path(spec: CrossoverSpec, extra: Sequence[str] = ()) -> Path | None:
    """The world teacher's directory, built on first use and cached (None when the spec names no teacher)."""
    return None if spec.teacher is None else world_teacher(spec.teacher, extra)


def pilot_critics(config: RunConfig, teacher: Path | None) -> list[Critic]:
    """The run config's critics, and answer-switch on the world teacher when there is one."""
    critics = build_critics(config.teacher, cache_dir=Path(config.cache_dir) / "teacher")
    if teacher is not None:
        critics.append(world_critic(WorldBackend(model=str(teacher)), "world-teacher",
                                    delta=config.teacher.answer_switch_delta, lam=config.teacher.answer_switch_lambda))
    return critics


class StudentPilot(BaseModel):
    """What the pilot measured on one base student."""

    student: str
    mix: str
    student_path: str
    build_s: float | None  # recorded by the build; None for a student built before builds recorded it
    final_pretraining_loss: float
    probe: int
    parsed: int
    correct: int
    wrong: int
    blamed_by_truth: dict[str, int]
    blamed_by_teacher: dict[str, dict[str, int]]
    # Per teacher, the share of wrong cases where it blamed the world's true first wrong step.
    localised_by_teacher: dict[str, float] = Field(default_factory=dict)
    forced_accuracy: dict[str, float]  # "k: skill" -> share of probe items where gold step k follows gold 0..k-1
    skill_families: dict[str, float]  # pool family -> accuracy on its first samples

    @property
    def parse_rate(self) -> float:
        return self.parsed / self.probe

    def share(self, skill: str) -> float:
        return self.blamed_by_truth.get(skill, 0) / self.wrong if self.wrong else 0.0


class Criterion(BaseModel):
    name: str
    value: float
    threshold: str
    held: bool


def _skill_family_samples(version: str) -> list[Sample]:
    wanted = Counter[str]()
    chosen: list[Sample] = []
    for sample in pool(0, 20_000, version=version):
        if sample.task in SKILL_FAMILIES and wanted[sample.task or ""] < SKILL_FAMILY_SAMPLES:
            wanted[sample.task or ""] += 1
            chosen.append(sample)
    return chosen


def _located(critic: Critic, sample: Sample, attempt: Attempt) -> int | None:
    """The step a critic blames; None where it cannot read the attempt (no steps or no answer to switch to)."""
    try:
        return critic.critique(sample, attempt).wrong_step
    except ValueError:
        return None


def pilot_student(spec: CrossoverSpec, student: str, *, console: Console, extra: Sequence[str] = (),
                  teacher: Path | None = None) -> StudentPilot:
    """Build (or find cached) one base student and measure it on the target's probe split."""
    config = student_config(spec, student, extra)
    path = build_tiny_student(Path(config.cache_dir), config.student.tiny)
    record = json.loads((path / "gaptune_student.json").read_text())
    # The build's own time, recorded by the build: re-measuring a cached student must not report ~0 s.
    build_s = record.get("build_s")
    console.print(f"{student}: student {path} (built in {'?' if build_s is None else f'{build_s:.0f}'} s)")
    model, processor = load_adapted(path, None, device=resolve_device(config.trainer.device))
    probe = task_split(spec.task, "probe", config.world_seed, spec.pilot.probe_size, start=spec.pilot.seed * DRAW_STRIDE)
    evaluation = evaluate(model, processor, probe, batch_size=config.student.eval_batch_size,
                          max_new_tokens=config.student.max_new_tokens)
    by_id = {s.id: s for s in probe}
    wrong = [a for a in evaluation.attempts if not a.correct]
    true_steps = [first_wrong_step(by_id[a.sample_id], a) for a in wrong]
    truth = Counter(blamed_skill(by_id[a.sample_id], step) for a, step in zip(wrong, true_steps, strict=True))
    by_teacher: dict[str, dict[str, int]] = {}
    localised: dict[str, float] = {}
    for critic in pilot_critics(config, teacher):
        steps = [_located(critic, by_id[a.sample_id], a) for a in wrong]
        located = Counter(blamed_skill(by_id[a.sample_id], step) for a, step in zip(wrong, steps, strict=True))
        by_teacher[critic.name] = dict(located.most_common())
        hits = sum(step == true for step, true in zip(steps, true_steps, strict=True))
        localised[critic.name] = hits / len(wrong) if wrong else 0.0
    forced = forced_step_correct(model, processor, probe, batch_size=config.student.eval_batch_size)
    gold = probe[0].steps or []
    labels = [*(f"{k + 1}: {step.skill}" for k, step in enumerate(gold)), f"{len(gold) + 1}: {ANSWER_STEP}"]
    forced_accuracy = {label: sum(flags[k] for flags in forced) / len(forced) for k, label in enumerate(labels)}
    families = _skill_family_samples(TASK_VERSIONS[spec.task])
    family_eval = evaluate(model, processor, families, batch_size=config.student.eval_batch_size,
                           max_new_tokens=config.student.max_new_tokens)
    return StudentPilot(
        student=student, mix=spec.students[student], student_path=str(path), build_s=build_s,
        final_pretraining_loss=float(record["loss_curve"][-1]), probe=len(probe),
        parsed=sum(a.answer is not None for a in evaluation.attempts), correct=evaluation.overall.correct,
        wrong=len(wrong), blamed_by_truth=dict(truth.most_common()), blamed_by_teacher=by_teacher,
        localised_by_teacher=localised,
        forced_accuracy=forced_accuracy,
        skill_families={family: family_eval.per_family[family].accuracy for family in SKILL_FAMILIES
                        if family in family_eval.per_family},
    )


def go_criteria(spec: CrossoverSpec, results: dict[str, StudentPilot]) -> list[Criterion]:
    """Every pre-registered criterion, per student, with its measured value."""
    rules = spec.pilot.go_criteria
    criteria = []
    for student, result in results.items():
        own, other = spec.rare_skill[student], spec.rare_skill[spec.other(student)]
        criteria += [
            Criterion(name=f"{student}: parse rate", value=result.parse_rate, threshold=f">= {rules.min_parse_rate}",
                      held=result.parse_rate >= rules.min_parse_rate),
            Criterion(name=f"{student}: wrong probe cases", value=result.wrong, threshold=f">= {rules.min_wrong_cases}",
                      held=result.wrong >= rules.min_wrong_cases),
            Criterion(name=f"{student}: own rare skill ({own}) blamed", value=result.share(own),
                      threshold=f">= {rules.min_own_rare_share}", held=result.share(own) >= rules.min_own_rare_share),
            Criterion(name=f"{student}: other's rare skill ({other}) blamed", value=result.share(other),
                      threshold=f"<= {rules.max_other_rare_share}", held=result.share(other) <= rules.max_other_rare_share),
        ]
    return criteria


def _histogram(counts: dict[str, int], total: int) -> str:
    return ", ".join(f"{skill} {n} ({n / total:.0%})" for skill, n in counts.items()) if total else "-"


def pilot_markdown(spec: CrossoverSpec, results: dict[str, StudentPilot], criteria: list[Criterion], *,
                   teacher_skipped: bool = False) -> str:
    verdict = "GO" if all(c.held for c in criteria) else "NO GO"
    lines = [f"# Crossover pilot: `{spec.task}`, seed {spec.pilot.seed} ({verdict})", "",
             f"Base students ({', '.join(spec.pilot.student_overrides) or 'default recipe'}) on the "
             f"{spec.pilot.probe_size}-item probe split of draw {spec.pilot.seed}; no arm, val or test was looked at.", "",
             "| student (mix) | probe acc | parse rate | wrong | blamed step, world's truth | final pretraining loss | build s |",
             "|---|---|---|---|---|---|---|"]
    for r in results.values():
        lines.append(f"| {r.student} ({r.mix}) | {r.correct / r.probe:.3f} | {r.parse_rate:.3f} | {r.wrong} | "
                     f"{_histogram(r.blamed_by_truth, r.wrong)} | {r.final_pretraining_loss:.4f} | "
                     f"{'not recorded' if r.build_s is None else f'{r.build_s:.0f}'} |")
    if teacher_skipped:
        lines += ["", f"The spec's world teacher (mix `{spec.teacher.mix if spec.teacher else '-'}`) was not built or "
                  "run in this pilot (`--without-teacher`); no criterion depends on it."]
    lines += ["", "Blamed step by each teacher (the skill of the gold step it located) and its localisation accuracy "
              "(the share of wrong cases where it blamed the world's true first wrong step):", "",
              "| student | teacher | blamed step | localised |", "|---|---|---|---|"]
    for r in results.values():
        for teacher, counts in r.blamed_by_teacher.items():
            hit = r.localised_by_teacher.get(teacher)
            lines.append(f"| {r.student} | {teacher} | {_histogram(counts, r.wrong)} | "
                         f"{'-' if hit is None else f'{hit:.0%}'} |")
    labels = list(next(iter(results.values())).forced_accuracy)
    lines += ["", "Teacher-forced accuracy per step (gold steps before it given):", "",
              "| student | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for r in results.values():
        lines.append(f"| {r.student} | " + " | ".join(f"{r.forced_accuracy[label]:.3f}" for label in labels) + " |")
    lines += ["", f"Accuracy on the first {SKILL_FAMILY_SAMPLES} samples of pool families (the skills outside the "
              "target's format):", "", "| student | " + " | ".join(SKILL_FAMILIES) + " |",
              "|---|" + "---|" * len(SKILL_FAMILIES)]
    for r in results.values():
        lines.append(f"| {r.student} | " + " | ".join(
            f"{r.skill_families[f]:.3f}" if f in r.skill_families else "-" for f in SKILL_FAMILIES) + " |")
    lines += ["", "## Go-criteria (pre-registered in the spec)", "", "| criterion | value | threshold | held |",
              "|---|---|---|---|"]
    for c in criteria:
        value = f"{c.value:.0f}" if c.value == int(c.value) and c.value > 1 else f"{c.value:.3f}"
        lines.append(f"| {c.name} | {value} | {c.threshold} | {'yes' if c.held else 'NO'} |")
    lines += ["", f"Verdict: **{verdict}**", ""]
    return "\n".join(lines)


def run_pilot(spec: CrossoverSpec, out: Path, *, console: Console, extra: Sequence[str] = (),
              with_teacher: bool = True) -> list[Criterion]:
    """Each student in turn (a student's result is written as soon as it exists), then the criteria and the report.
    `with_teacher=False` leaves the spec's world teacher out (no criterion depends on it), and the report says so."""
    results: dict[str, StudentPilot] = {}
    teacher = teacher_path(spec, extra) if with_teacher else None
    wanted = {c.name for c in pilot_critics(student_config(spec, next(iter(spec.students)), extra), None)}
    wanted |= {"world-teacher"} if teacher is not None else set()
    for student in spec.students:
        done = out / f"{student}.json"
        if done.exists():
            kept = StudentPilot.model_validate_json(done.read_text())
            if wanted <= set(kept.localised_by_teacher):
                results[student] = kept
                continue
            console.print(f"{student}: measuring again for the teachers it lacks (the student is cached)")
        results[student] = pilot_student(spec, student, console=console, extra=extra, teacher=teacher)
        write_text_atomic(done, results[student].model_dump_json(indent=2) + "\n")
    criteria = go_criteria(spec, results)
    write_text_atomic(out / "criteria.json", json.dumps([c.model_dump() for c in criteria], indent=2) + "\n")
    write_text_atomic(out / "pilot.md", pilot_markdown(spec, results, criteria,
                                                       teacher_skipped=not with_teacher and spec.teacher is not None))
    return criteria
