"""The `gaptune` command line: run, resume, trace, report, eval, and the world, pool and bench commands.

Every command runs inside one error handler (`_Commands.invoke`): an error the
user can fix (a `UserError`, and the few library errors that mean the same,
see `user_message`) prints `error: <message>` on stderr and exits 2; anything
else is a bug in gaptune: one line saying so and exit 1. `--debug` (or
GAPTUNE_DEBUG=1) prints the traceback in both cases.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from gaptune.data.engine import EngineName
from gaptune.data.errors import RunDirectoryError, UserError
from gaptune.graph.config import load_config
from gaptune.graph.run_dir import RunDir

DEBUG_ENV = "GAPTUNE_DEBUG"
USER_ERROR_EXIT = 2
BUG_EXIT = 1


def user_message(error: BaseException) -> str | None:
    """The message to show when `error` is the user's to fix; None when it is a bug in gaptune.

    Beside `UserError` (config, data, run directory): a path the user gave
    that does not exist or cannot be read (OSError with a file name), a config
    model's `ValidationError`, and a teacher failure that ended the run rather
    than being counted as a skipped case (server down, bad base_url, rejected
    key). The teacher's error is matched through `sys.modules`: when its
    module was never imported, the error cannot be one of its.
    """
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    if isinstance(error, ValidationError) and error.title.endswith(("Config", "Spec")):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg']}" for e in error.errors())
        return f"invalid {error.title}: {problems}"
    teacher_errors = sys.modules.get("gaptune.agents.llm.errors")
    if teacher_errors is not None and isinstance(error, teacher_errors.TeacherError):
        return (f"{error} (the teacher failed outside a single case, which ends the run: check that its server is up "
                "and teacher.base_url, teacher.model and teacher.api_key_env in the config)")
    return None


def _debugging(ctx: typer.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def report_failure(error: BaseException, *, debug: bool) -> int:
    """Print what went wrong on stderr and return the exit code: 2 for the user's errors, 1 for gaptune's bugs."""
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    message = user_message(error)
    if message is not None:
        typer.secho(f"error: {message}", err=True, fg="red")
        return USER_ERROR_EXIT
    hint = "" if debug else "; rerun with --debug for the traceback"
    typer.secho(f"error: a bug in gaptune, not in your input: {type(error).__name__}: {error}{hint}",
                err=True, fg="red")
    return BUG_EXIT


class _Commands(TyperGroup):
    """The top-level group: every command, sub-commands included, runs inside one error handler."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors, --help, explicit exits: typer reports them itself
        except Exception as error:
            raise typer.Exit(report_failure(error, debug=_debugging(ctx))) from error


app = typer.Typer(help="Adapt a multimodal model to a task by tuning on the skills it lacks.", no_args_is_help=True,
                  cls=_Commands)
data_app = typer.Typer(help="Check a data file the way a run would read it.", no_args_is_help=True)
world_app = typer.Typer(help="The built-in synthetic world and its tiny student.", no_args_is_help=True)
pool_app = typer.Typer(help="Pool annotation and indexing.", no_args_is_help=True)
bench_app = typer.Typer(help="Experiments that test the method's claims.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(world_app, name="world")
app.add_typer(pool_app, name="pool")
app.add_typer(bench_app, name="bench")
console = Console()


# Commands that only read a run directory: they load no model, so they skip importing transformers (seconds).
_READ_ONLY_COMMANDS = ("trace", "report", "watch", "compare")


@app.callback()
def _quiet_libraries(
    ctx: typer.Context,
    debug: Annotated[bool, typer.Option("--debug", envvar=DEBUG_ENV,
                                        help="print the traceback of any error (also: GAPTUNE_DEBUG=1)")] = False,
) -> None:
    """gaptune prints its own progress; the libraries' per-load bars and deprecation chatter would bury it."""
    import warnings

    if ctx.invoked_subcommand in _READ_ONLY_COMMANDS:
        return
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    warnings.filterwarnings("ignore", category=FutureWarning)


ConfigArg = Annotated[Path | None, typer.Argument(help="YAML run config; omit for the embedded default")]
SetOpt = Annotated[list[str], typer.Option("--set", help="override a config key: key.sub=value (repeatable)")]


def _scratch_run() -> RunDir:
    """Commands outside a run (eval, pool) still get a run directory, in a temp folder, not the caller's."""
    import tempfile

    return RunDir(Path(tempfile.mkdtemp(prefix="gaptune-")))


def _config(path: Path | None, overrides: list[str]) -> Any:
    return load_config(path, overrides)


def _run_directory(path: Path) -> RunDir:
    """A run directory the user named: it must exist and hold a gaptune run (a config.yaml or a trace)."""
    run = RunDir(path)
    if not path.exists():
        raise RunDirectoryError(f"{path}: no such run directory")
    if not path.is_dir():
        raise RunDirectoryError(f"{path}: a file, not a run directory")
    if not run.config.exists() and not run.trace.exists():
        raise RunDirectoryError(f"{path}: not a gaptune run directory (no config.yaml and no trace.jsonl); "
                                "a run directory is what `gaptune run --run-dir DIR` created")
    return run


@app.command()
def run(config: ConfigArg = None, run_dir: Annotated[Path | None, typer.Option(help="where the run writes everything")] = None,
        set_: SetOpt = []) -> None:  # noqa: B006
    """Run the adaptation loop (with no config: the built-in world, tiny student, the label-blind reader teacher)."""
    from gaptune.graph.runner import run as start_run

    resolved = _config(config, set_)
    target = run_dir or Path("runs") / f"{resolved.task.name}-{resolved.selection}-{time.strftime('%Y%m%d-%H%M%S')}"
    console.print(f"run directory: {target}")
    state = start_run(resolved, target, console=console)
    _summary(RunDir(target), state)


@app.command()
def resume(run_dir: Path) -> None:
    """Continue a run from its last checkpoint (after a crash, a kill, or Ctrl-C)."""
    from gaptune.graph.runner import resume as resume_run

    _run_directory(run_dir)
    state = resume_run(run_dir, console=console)
    _summary(RunDir(run_dir), state)


def _summary(run: RunDir, state: dict[str, Any]) -> None:
    history = state.get("history", [])
    if history:
        console.print(f"[bold]done[/]: test {history[0]['test_acc']:.3f} -> {history[-1]['test_acc']:.3f} "
                      f"over {len(history) - 1} round(s); stop: {state.get('stop_reason')}")
    console.print(f"report: {run.report}")


@app.command()
def trace(run_dir: Path,
          sample: Annotated[str | None, typer.Option(help="why was this pool sample trained on, and what did it change?")] = None,
          case: Annotated[str | None, typer.Option(help="what did the teachers say about this probe case?")] = None,
          round_: Annotated[int | None, typer.Option("--round", help="every decision of one round")] = None,
          as_json: Annotated[bool, typer.Option("--json", help="the same answer as JSON")] = False) -> None:
    """Answer questions from the decision trace (no option: the run round by round).

    Exit 1 when the trace holds no answer (a sample never selected, a case never critiqued, a round never run).
    """
    from gaptune.graph import explain
    from gaptune.graph import trace as views
    from gaptune.graph.metrics import read_metrics

    asked = [name for name, value in (("--sample", sample), ("--case", case), ("--round", round_)) if value is not None]
    if len(asked) > 1:
        raise UserError(f"ask one question at a time: {' and '.join(asked)} were both given")
    run = _run_directory(run_dir)
    events = views.read_trace(run.trace)
    if not events:
        raise RunDirectoryError(f"{run_dir}: no decision trace yet (trace.jsonl is missing or empty: "
                                "the run has not finished its first step)")
    payload: Any
    if sample is not None:
        selections = explain.explain_sample(events, sample)
        if not selections:
            _no_answer(f"{sample} was never selected from the pool in this run")
        payload, view = [s.model_dump(mode="json") for s in selections], views.render_sample(sample, selections)
    elif case is not None:
        rounds = explain.explain_case(events, case)
        if not rounds:
            _no_answer(f"no critique of case {case} in this run (only wrong probe cases are critiqued)")
        payload, view = [r.model_dump(mode="json") for r in rounds], views.render_case(case, rounds)
    elif round_ is not None:
        present = explain.rounds_of(events)
        if round_ not in present:
            _no_answer(f"round {round_} is not in this run's trace (rounds: {', '.join(map(str, present))})")
        explained = explain.explain_round(events, round_)
        payload, view = explained.model_dump(mode="json"), views.render_round(explained)
    else:
        metrics = read_metrics(run.metrics) if run.metrics.exists() else None
        overview = explain.explain_run(events, metrics)
        payload, view = overview.model_dump(mode="json"), views.render_run(overview)
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        console.print(view)


def _no_answer(message: str) -> NoReturn:
    typer.secho(message, err=True, fg="yellow")
    raise typer.Exit(1)


@app.command()
def report(run_dir: Path) -> None:
    """Rewrite report.md and its plots from metrics.json, and print the round table."""
    from gaptune.graph.metrics import read_metrics
    from gaptune.graph.report import write_report

    run = _run_directory(run_dir)
    if not run.metrics.exists():
        raise RunDirectoryError(f"{run_dir}: no metrics.json: the run has not finished "
                                f"(continue it with `gaptune resume {run_dir}`)")
    metrics = read_metrics(run.metrics)
    write_report(run, metrics)
    table = Table(title=f"{metrics.task} · {metrics.selection} · {metrics.stop_reason}")
    for column in ("round", "val", "test", "train size", "gaps"):
        table.add_column(column)
    for r in metrics.rounds:
        table.add_row(str(r.round), f"{r.val_acc:.3f}", f"{r.test_acc:.3f}", str(r.train_size),
                      ", ".join(f"{g} {n}" for g, n in r.gaps.items()))
    console.print(table)
    console.print(f"report: {run.report}")


@app.command()
def watch(run_dir: Path,
          interval: Annotated[float, typer.Option(help="seconds between reads of the run's status")] = 0.5,
          once: Annotated[bool, typer.Option(help="print the view once and exit")] = False) -> None:
    """Live view of a run going on in another process: round, stage, progress, val and cost so far.

    Ends with the run (exit 0), or exit 1 when the run's process is gone before finishing.
    """
    from gaptune.graph.watch import watch as watch_run

    _run_directory(run_dir)
    code = watch_run(run_dir, console, interval_s=interval, once=once)
    if code:
        raise typer.Exit(code)


@app.command()
def compare(run_dirs: Annotated[list[Path], typer.Argument(help="finished run directories")],
            plot: Annotated[Path, typer.Option(help="where the accuracy-per-round plot goes")] = Path("compare.png"),
            ) -> None:
    """Several finished runs side by side: accuracy per round, selection by skill, teacher cost, and a plot."""
    from gaptune.experiments.compare import load_run, plot_comparison, render_comparison

    runs = [load_run(_run_directory(path).root) for path in run_dirs]
    console.print(render_comparison(runs))
    plot_comparison(runs, plot)
    console.print(f"plot: {plot}")


@app.command("eval")
def eval_(config: ConfigArg = None,
          split: Annotated[str, typer.Option(help="probe, val, test, or pool (a slice of every pool family)")] = "test",
          per_family: Annotated[int, typer.Option(help="samples per family with --split pool")] = 50,
          student: Annotated[Path | None, typer.Option(help="student directory (default: the config's)")] = None,
          adapter: Annotated[Path | None, typer.Option(help="an adapter saved by a run")] = None,
          set_: SetOpt = []) -> None:  # noqa: B006
    """Accuracy table (overall, per skill, per family) of a student on a task split or across the pool."""
    from collections import defaultdict

    from gaptune.graph.resources import Resources

    overrides = [*set_, *([f"student.path={student}"] if student else [])]
    resolved = _config(config, overrides)
    res = Resources(resolved, _scratch_run(), console=console)
    samples = None
    if split == "pool":
        by_family: dict[str, list[Any]] = defaultdict(list)
        for sample in res.data.pool.values():
            if len(by_family[sample.task]) < per_family:
                by_family[sample.task].append(sample)
        samples = [sample for family in sorted(by_family) for sample in by_family[family]]
    elif split not in ("probe", "val", "test"):
        raise UserError(f"--split {split!r}: expected probe, val, test or pool")
    evaluation = res.student.evaluate(str(adapter) if adapter else None, split, samples)
    title = "pool" if split == "pool" else f"{resolved.task.name} · {split}"
    table = Table(title=f"{title} · {len(evaluation.attempts)} samples")
    table.add_column("group")
    table.add_column("accuracy", justify="right")
    table.add_column("n", justify="right")
    table.add_row("[bold]overall[/]", f"{evaluation.accuracy:.3f}", str(evaluation.overall.total))
    for name, tally in sorted(evaluation.per_skill.items()):
        table.add_row(f"skill: {name}", f"{tally.accuracy:.3f}", str(tally.total))
    for name, tally in sorted(evaluation.per_family.items()):
        table.add_row(f"family: {name}", f"{tally.accuracy:.3f}", str(tally.total))
    console.print(table)


@data_app.command("check")
def data_check(file: Annotated[str, typer.Argument(help="a LLaVA JSON/JSONL file, an image folder or a saved dataset")],
               image_root: Annotated[Path | None, typer.Option(help="where relative image paths start")] = None,
               shown: Annotated[int, typer.Option(help="problems listed (all are counted)")] = 50) -> None:
    """What gaptune would read from FILE: samples, gold steps and skills, and every row it would skip and why.

    Exit 0 when every row reads; 2 when some would be skipped (as a pool) or stop a run (as a task split).
    """
    from collections import Counter

    from gaptune.data.loaders import load_samples

    result = load_samples(file, image_root=image_root, strict=False)
    samples = result.samples
    with_steps = [s for s in samples if s.steps]
    skills = Counter(step.skill for s in with_steps for step in s.steps or [])
    skills.update(skill for s in samples for skill in s.skills)
    typer.echo(f"{file}: {len(samples)} samples; {len(with_steps)} with gold rationale steps "
               f"({sum(len(s.steps or []) for s in with_steps)} steps); {sum(bool(s.images) for s in samples)} "
               f"with images; {sum(bool(s.choices) for s in samples)} multiple-choice")
    if skills:
        typer.echo("skills: " + ", ".join(f"{name} {count}" for name, count in skills.most_common()))
    if samples:
        first = samples[0]
        typer.echo(f"first sample: id {first.id!r}, question {first.question!r}, answer {first.answer!r}, "
                   f"{len(first.steps or [])} steps")
    for note in result.notes:
        typer.secho(f"note: {note}", fg="yellow")
    for problem in result.problems[:shown]:
        typer.echo(f"skip {problem.describe()}")
    if result.skipped > shown:
        typer.echo(f"... and {result.skipped - shown} more")
    if result.skipped:
        raise UserError(f"{file}: {result.skipped} rows or duplicate ids would be skipped in a pool, and stop a run "
                        "as a task split (listed above)")


@world_app.command("student")
def world_student(force: Annotated[bool, typer.Option(help="build from the recipe even when cached or shipped")] = False,
                  verify: Annotated[bool, typer.Option(help="rebuild the shipped student from its recipe and compare")] = False,
                  set_: SetOpt = []) -> None:  # noqa: B006
    """Build (or find in the cache, or take the shipped build of) the pretrained tiny student and print its path."""
    import tempfile

    from gaptune.training.tiny_student import build_tiny_student, verify_shipped

    resolved = _config(None, set_)
    started = time.perf_counter()
    if verify:
        with tempfile.TemporaryDirectory(prefix="gaptune-verify-") as scratch:
            check = verify_shipped(resolved.student.tiny, Path(scratch))
        console.print(f"shipped {check.shipped}\nrebuilt from the recipe in {time.perf_counter() - started:.0f} s: "
                      f"max weight difference {check.max_weight_diff:.3g}, final pretraining loss "
                      f"{check.final_loss_rebuilt:.4f} vs shipped {check.final_loss_shipped:.4f}")
        verdict = "identical" if check.identical else "agrees (within 10% final loss)" if check.agrees else "DIFFERS"
        console.print(f"verdict: {verdict}")
        raise typer.Exit(0 if check.agrees else 1)
    path = build_tiny_student(Path(resolved.cache_dir), resolved.student.tiny, force=force)
    console.print(f"tiny student: {path} ({time.perf_counter() - started:.0f} s)")


@world_app.command("family")
def world_family(model_type: Annotated[str, typer.Argument(help="a model type of the family registry, e.g. idefics3")],
                 out: Annotated[Path, typer.Option(help="where the checkpoint is written")]) -> None:
    """Write a tiny random-weight checkpoint of one image-text family (for a dry run of `student.path` on it)."""
    from gaptune.training.tiny_families import build_tiny_family

    console.print(f"tiny {model_type} checkpoint: {build_tiny_family(model_type, out)}")


@world_app.command("export")
def world_export(out_dir: Path, pool_size: int = 50_000, seed: int = 0) -> None:
    """Write the world's pool and target-task splits as LLaVA JSONL (images as world:// references)."""
    from gaptune.data.llava_format import write_llava
    from gaptune.data.world.world import SPLITS, TASKS, pool, task_split

    count = write_llava(pool(seed, pool_size), out_dir / "pool.jsonl")
    console.print(f"pool: {count} samples -> {out_dir / 'pool.jsonl'}")
    for task in TASKS:
        for split in SPLITS:
            path = out_dir / task / f"{split}.jsonl"
            console.print(f"{task}/{split}: {write_llava(task_split(task, split, seed), path)} samples -> {path}")


@pool_app.command("import")
def pool_import(source: Annotated[str, typer.Argument(help="LLaVA JSON/JSONL, a saved dataset or parquet folder, "
                                                           "or an image folder with metadata.jsonl")],
                out: Annotated[Path, typer.Option(help="folder for pool.jsonl, rejects.jsonl and the progress")],
                image_root: Annotated[Path | None, typer.Option(help="relative image paths start here "
                                                                     "(default: the source's folder)")] = None,
                verify_images: Annotated[bool, typer.Option(help="open each image's header; a corrupt one "
                                                                 "is a reject")] = True,
                limit: Annotated[int | None, typer.Option(help="stop after this many source rows")] = None,
                engine: Annotated[EngineName, typer.Option(help="where the image checks run: local or ray")] = "local",
                ray_address: Annotated[str, typer.Option(help="the Ray cluster (with --engine ray)")] = "auto",
                workers: Annotated[int, typer.Option(help="Ray actors at once (with --engine ray)")] = 2) -> None:
    """Stream a pool into one gaptune pool file; bad rows go to rejects.jsonl; resumable after a kill."""
    from gaptune.data.engine import EngineConfig, build_engine
    from gaptune.data.pool_import import import_pool

    runner = build_engine(EngineConfig(name=engine, address=ray_address, workers=workers))
    report_ = import_pool(source, out, image_root=image_root, verify_images=verify_images, limit=limit,
                          engine=runner)
    resumed = f", resumed at row {report_.resumed_at_row}" if report_.resumed_at_row else ""
    console.print(f"pool import: {report_.rows} rows -> {report_.samples} samples in {report_.pool}; "
                  f"{report_.rejected} rejected ({', '.join(f'{k} {v}' for k, v in report_.reasons.items()) or '-'})"
                  f" -> {report_.rejects}{resumed}; {'complete' if report_.complete else 'incomplete (run again)'}",
                  markup=False, soft_wrap=True)  # reasons hold field names such as image[0], not markup
    console.print(f"use it with --set pool.path={report_.pool}", markup=False, soft_wrap=True)


@pool_app.command("index")
def pool_index(config: ConfigArg = None, set_: SetOpt = []) -> None:  # noqa: B006
    """Index the configured pool into Chroma and BM25 (resumable; a no-op when already complete)."""
    from gaptune.graph.resources import Resources

    res = Resources(_config(config, set_), _scratch_run(), console=console)
    index = res.search.index
    console.print(f"pool index: {index.manifest.samples} samples, {index.manifest.groups} documents at {index.index_dir}")


@pool_app.command("annotate")
def pool_annotate(config: Path, out: Annotated[Path, typer.Option(help="annotated pool, LLaVA JSONL")],
                  set_: SetOpt = [],  # noqa: B006
                  estimate: Annotated[bool, typer.Option(
                      "--estimate", help="print the calls, tokens and cost it would take, and make no call")] = False,
                  ) -> None:
    """Have the annotator teacher write the skills each pool sample teaches (cached, resumable)."""
    from gaptune.agents.annotator import annotate_pool, estimate_annotation
    from gaptune.agents.llm.server_check import check_server
    from gaptune.agents.teacher_config import OpenAIBackend
    from gaptune.data.engine import build_engine
    from gaptune.data.llava_format import write_llava
    from gaptune.graph.resources import Resources

    resolved = _config(config, set_)
    if estimate:
        res = Resources(resolved, _scratch_run(), console=console)
        guess = estimate_annotation(res.data.pool.values(), resolved.teacher, cache_dir=Path(resolved.cache_dir) / "teacher")
        dollars = ("no price set (teacher.annotator.price_in_per_1m / price_out_per_1m)" if guess.cost_usd is None
                   else f"${guess.cost_usd:,.4f} expected, ${guess.cost_usd_max:,.4f} if every reply hits the token limit")
        console.print(f"annotator {guess.annotator}: {guess.samples} samples, {guess.passed_through} already labelled, "
                      f"{guess.cached} cached -> {guess.calls} calls; ~{guess.tokens_in:,} tokens in, "
                      f"~{guess.tokens_out:,} out (at most {guess.tokens_out_max:,}); {dollars}", markup=False)
        return
    if resolved.teacher.check_servers and isinstance(resolved.teacher.annotator, OpenAIBackend):
        check_server(resolved.teacher.annotator, role="teacher.annotator")
    res = Resources(resolved, _scratch_run(), console=console)
    report_ = annotate_pool(res.data.pool.values(), resolved.teacher, cache_dir=Path(resolved.cache_dir) / "teacher",
                            engine=build_engine(resolved.engine))
    written = write_llava(report_.samples, out)
    console.print(f"annotated pool: {written} samples -> {out}; {report_.model_dump(exclude={'samples'})}")


@bench_app.command("efficiency")
def bench_efficiency(spec: Annotated[Path | None, typer.Argument(help="bench spec YAML; omit for the committed table")] = None,
                     out: Annotated[Path, typer.Option(help="where runs and the table go")] = Path("bench/efficiency"),
                     students_table: Annotated[bool, typer.Option(help="also write students.md (per-skill accuracy)")] = True,
                     per_family: Annotated[int, typer.Option(help="pool samples per family for students.md")] = 50,
                     report_only: Annotated[bool, typer.Option(help="only rewrite the table from finished runs")] = False,
                     arm: Annotated[list[str], typer.Option(
                         help="run only this arm's cells now (repeatable); the rest wait for a later call")] = [],  # noqa: B006
                     ) -> None:
    """Error-driven against every other arm: two students, budgets, seeds; resumable (finished runs are kept)."""
    from gaptune.data.atomic import write_text_atomic
    from gaptune.experiments.runner import run_cells
    from gaptune.experiments.spec import load_spec, plan, save_spec
    from gaptune.experiments.tables import student_skills_markdown, write_outputs
    from gaptune.graph.resources import Resources

    resolved = load_spec(spec)
    plan(resolved, arm)  # an arm the spec lacks is an error before any work
    started = time.perf_counter()
    save_spec(resolved, out)

    if students_table and not report_only:
        def evaluate(overrides: list[str], samples: list[Any]) -> Any:
            res = Resources(load_config(None, overrides), _scratch_run(), console=console)
            return res.student.evaluate(None, "pool", samples)

        write_text_atomic(out / "students.md", student_skills_markdown(resolved, per_family, resolved.overrides, evaluate))
    if not report_only:
        def refresh_table() -> None:
            write_outputs(resolved, out)

        run_cells(resolved, out, console=console, arms=arm, on_finished=refresh_table)
    wall = time.perf_counter() - started
    rows = write_outputs(resolved, out, wall_s=None if report_only else wall)
    console.print((out / "table.md").read_text())
    console.print(f"{len(rows)} runs in the table; this invocation took {wall:.0f} s; see {out}")


@bench_app.command("pilot")
def bench_pilot(spec: Annotated[Path, typer.Argument(help="the pre-registered crossover spec YAML")],
                out: Annotated[Path, typer.Option(help="where the pilot's report goes")],
                set_: SetOpt = [],  # noqa: B006
                without_teacher: Annotated[bool, typer.Option(
                    "--without-teacher", help="leave the spec's world teacher out (no go-criterion depends on it)")] = False,
                ) -> None:
    """Build each base student of a crossover spec and check the spec's go-criteria on the target's probe split."""
    from gaptune.experiments.pilot import load_crossover_spec, run_pilot

    resolved = load_crossover_spec(spec)
    started = time.perf_counter()
    criteria = run_pilot(resolved, out, console=console, extra=set_, with_teacher=not without_teacher)
    console.print((out / "pilot.md").read_text())
    console.print(f"pilot took {time.perf_counter() - started:.0f} s; see {out}")
    raise typer.Exit(0 if all(c.held for c in criteria) else 1)


if __name__ == "__main__":
    app()
