"""How often each critic blamed the true first wrong step: localisation.md, read back from a spec's finished runs.

Every critique a run recorded (the student's output, the step the critic
blamed) is scored against the world's truth, the first step where the
student's rationale leaves the gold one (`first_wrong_step`), on the run's own
probe split. No critic is asked again, so the figures are those of the
critiques the selection was made from. Arms that share a critic on the same
student and seed (error-driven and step-query) made the same critiques; each
(student, critic, seed) is counted once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from pydantic import BaseModel
from rich.console import Console

from gaptune.agents.reference_critic import first_wrong_step
from gaptune.data.attempt import Attempt
from gaptune.data.sample import Sample
from gaptune.experiments.spec import Cell, EfficiencySpec, plan, run_dir
from gaptune.graph.config import load_config
from gaptune.graph.events import CritiqueEvent
from gaptune.graph.run_data import RunData
from gaptune.graph.run_dir import RunDir
from gaptune.graph.trace import Trace, read_trace
from gaptune.training.answer_parsing import parse_output

ONLY_ANSWER = "answer only"  # every step matched the gold rationale, the answer did not
NO_SWITCH = "no step"  # a teacher that located no wrong step


class Localisation(BaseModel):
    """One critic's critiques in one run, against the world's truth."""

    cell: Cell
    critic: str
    cases: int
    located: int  # critiques that blamed the true first wrong step
    truth: dict[str, int]  # skill of the true first wrong step -> cases
    blamed: dict[str, int]  # skill of the step the critic blamed -> cases

    @property
    def rate(self) -> float:
        return self.located / self.cases if self.cases else 0.0


def blamed_skill(sample: Sample, index: int | None) -> str:
    """The gold skill of step `index` of `sample`'s rationale, or which of the two non-steps it is."""
    gold = sample.steps or []
    if index is None:
        return NO_SWITCH
    return gold[index].skill if index < len(gold) else ONLY_ANSWER


def score_critiques(cell: Cell, probe: dict[str, Sample], critiques: list[CritiqueEvent]) -> list[Localisation]:
    """Each critic's round-1 critiques of a run, scored against the gold steps of `probe`."""
    by_critic: dict[str, list[tuple[int | None, int, Sample]]] = defaultdict(list)
    for event in critiques:
        if event.round != 1:
            continue
        sample = probe[event.inputs.case]
        steps, answer = parse_output(event.inputs.student_output)
        attempt = Attempt(sample_id=sample.id, output=event.inputs.student_output, steps=steps, answer=answer,
                          correct=False)
        by_critic[event.output.teacher].append((event.output.wrong_step, first_wrong_step(sample, attempt), sample))
    return [
        Localisation(
            cell=cell, critic=critic, cases=len(scored), located=sum(blamed == true for blamed, true, _ in scored),
            truth=dict(Counter(blamed_skill(sample, true) for _, true, sample in scored).most_common()),
            blamed=dict(Counter(blamed_skill(sample, blamed) for blamed, _, sample in scored).most_common()),
        )
        for critic, scored in sorted(by_critic.items())
    ]


def run_localisation(run: RunDir, cell: Cell) -> list[Localisation]:
    """The critiques of one finished run, on its own probe split (rebuilt from its config; only world tasks have
    gold steps for every item)."""
    config = load_config(run.config)
    if config.task.world is None:
        return []
    critiques = [e for e in read_trace(run.trace) if isinstance(e, CritiqueEvent)]
    if not critiques:
        return []
    probe = RunData(config=config, trace=Trace(run.trace), console=Console(quiet=True)).probe_by_id
    return score_critiques(cell, probe, critiques)


def collect_localisation(spec: EfficiencySpec, out: Path) -> list[Localisation]:
    """Every finished run's critiques at the main budget, one per (student, critic, seed): the first in the plan's
    order, since arms that share a critic made the same critiques."""
    found: dict[tuple[str, str, int], Localisation] = {}
    for cell in plan(spec):
        run = RunDir(run_dir(out, cell))
        if cell.budget != spec.budget or not run.metrics.exists():
            continue
        for scored in run_localisation(run, cell):
            found.setdefault((cell.student, scored.critic, cell.seed), scored)
    return list(found.values())


def _shares(counts: Counter[str]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(f"{skill} {n / total:.0%}" for skill, n in counts.most_common())


def localisation_markdown(rows: list[Localisation]) -> str:
    """Per student and critic: the share of wrong cases whose true first wrong step it blamed (pooled, and per seed),
    and what it blamed against what was wrong."""
    lines = ["How often each critic blamed the true first wrong step (the first step where the student's rationale "
             "leaves the gold one) in the wrong probe cases it read; seeds pooled, then each seed's own rate. "
             f"`{ONLY_ANSWER}`: every step right, the final answer wrong.", "",
             "`arm`: the arm whose runs the critiques were read from (a critic's name is its backend's: `reference` "
             "reads the world's truth, the oracle).", "",
             "| student | critic | arm | seeds | cases | localised | per seed | true first wrong step | blamed step |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[Localisation]] = defaultdict(list)
    for row in rows:
        groups[row.cell.student, row.critic].append(row)
    for (student, critic), seeds in sorted(groups.items()):
        seeds.sort(key=lambda r: r.cell.seed)
        cases, located = sum(r.cases for r in seeds), sum(r.located for r in seeds)
        truth: Counter[str] = Counter()
        blamed: Counter[str] = Counter()
        for r in seeds:
            truth.update(r.truth)
            blamed.update(r.blamed)
        per_seed = ", ".join(f"{r.cell.seed}: {r.rate:.0%}" for r in seeds)
        arms = ", ".join(sorted({r.cell.arm for r in seeds}))
        lines.append(f"| {student} | {critic} | {arms} | {len(seeds)} | {cases} | {located / cases if cases else 0:.0%} | "
                     f"{per_seed} | {_shares(truth)} | {_shares(blamed)} |")
    return "\n".join(lines) + "\n"
