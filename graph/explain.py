"""Answers from the trace: why was this sample trained on, what did it change, what did the teacher say about a case.

Pure functions from the trace's typed events (graph/events.py, as
`read_trace` returns them) to typed explanations; rendering them as text or
JSON is the command line's job.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ConfigDict

from gaptune.data.records import Critique
from gaptune.graph.events import (
    ChooseEvent,
    ClassifyEvent,
    CritiqueEvent,
    CritiqueFaultEvent,
    EventBase,
    JudgeEvent,
    LoadEvent,
    ProbeEvent,
    SelectEvent,
    StartEvent,
    TraceEvent,
    TrainEvent,
)
from gaptune.graph.metrics import RunMetrics


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CaseReason(_View):
    """A wrong probe case behind a gap, and the critique the judge kept for it."""

    case: str
    teacher: str
    wrong_step: int | None
    missing_skill: str
    explanation: str


class CandidateResult(_View):
    """One candidate adapter trained in a round: its kind, its training set size, its val accuracy, kept or not."""

    candidate: str
    train_size: int
    val_acc: float
    chosen: bool


class Effect(_View):
    """What a sample selected in `round` went into, and what that round changed on the validation split.

    Every candidate of the round trains on the round's cumulative selection, so
    the sample entered each of `candidates`; `chosen` is the one the round kept
    (None while the round has not `finished`, and when it kept the previous
    adapter because no candidate matched its val accuracy). `val_before` is the model the
    round started from (the base student for round 1), `val_after` the kept
    candidate's. Later rounds train on the cumulative set too:
    `also_trained_in` lists them.
    """

    round: int
    candidates: list[CandidateResult]
    finished: bool
    chosen: str | None
    val_before: float | None
    val_after: float | None
    also_trained_in: list[int]


class SampleSelection(_View):
    """One selection of a pool sample: the round, the gap and query that chose it, the cases behind the gap, its effect.

    `effect` is None when the run stopped before that round trained anything.
    """

    round: int
    strategy: str
    sample_id: str
    gap: str
    gap_errors: int
    query: str
    method: str
    score: float
    rank: int
    cases: list[CaseReason]
    effect: Effect | None


class CritiqueView(_View):
    """What one teacher said about a case: the step and skill it blamed, or the fault that made it give up."""

    teacher: str
    model: str
    method: str | None
    wrong_step: int | None
    missing_skill: str | None
    explanation: str
    gap: str | None
    fault: str | None
    kept: bool


class JudgeView(_View):
    teacher: str
    reason: str


class CaseRound(_View):
    """Every critique of one wrong probe case in one round, the judge's pick, and the student's output."""

    round: int
    student_output: str | None
    critiques: list[CritiqueView]
    judge: JudgeView | None


class ProbeView(_View):
    samples: int
    accuracy: float
    wrong_cases: int


class SelectionView(_View):
    strategy: str
    budget: int
    allocation: dict[str, int]
    shortfall: dict[str, int]
    selected: int
    excluded: int


class ChoiceView(_View):
    chosen: str | None
    why: str
    val_acc: float
    test_acc: float
    stop_reason: str | None


class RoundExplanation(_View):
    """Every decision of one round, in the order the loop made them; a part is None when the round did not reach it.

    Round 0 holds only the base student's scores (`choice`, chosen None).
    """

    round: int
    probe: ProbeView | None
    critiques: int
    teacher_faults: int
    judged: int
    gaps: dict[str, int]
    gap_source: str | None
    diagnosis: dict[str, int] | None
    selection: SelectionView | None
    candidates: list[CandidateResult]
    val_before: float | None
    choice: ChoiceView | None


class RunOverview(_View):
    """The whole run, a round per row; `stop_reason` None while the run has not finished; `rows_skipped`: bad
    rows and duplicate ids skipped in the user's data files."""

    rounds: list[RoundExplanation]
    stop_reason: str | None
    events: int
    rows_skipped: int


_Kind = TypeVar("_Kind", bound=EventBase)


def _of(events: list[TraceEvent], kind: type[_Kind], round_: int | None = None) -> list[_Kind]:
    return [e for e in events if isinstance(e, kind) and (round_ is None or e.round == round_)]


def _one(events: list[TraceEvent], kind: type[_Kind], round_: int) -> _Kind | None:
    return next(iter(_of(events, kind, round_)), None)


def _critiques_for(events: list[TraceEvent], round_: int, case: str) -> list[CritiqueEvent | CritiqueFaultEvent]:
    return [e for e in events if isinstance(e, CritiqueEvent | CritiqueFaultEvent)
            and e.round == round_ and e.inputs.case == case]


def _judge_of(events: list[TraceEvent], round_: int, case: str) -> JudgeEvent | None:
    return next((e for e in _of(events, JudgeEvent, round_) if e.inputs.case == case), None)


def _kept_critique(events: list[TraceEvent], round_: int, case: str) -> Critique | None:
    """The critique the judge kept for a case (the only one, when a single critic answered)."""
    judged = _judge_of(events, round_, case)
    if judged is not None:
        return judged.inputs.candidates[judged.output.chosen]
    answered = [c.output for c in _critiques_for(events, round_, case) if isinstance(c, CritiqueEvent)]
    return answered[0] if answered else None


def _candidates(events: list[TraceEvent], round_: int) -> list[CandidateResult]:
    choice = _one(events, ChooseEvent, round_)
    chosen = choice.output.chosen if choice else None
    return [CandidateResult(candidate=e.output.candidate, train_size=e.output.train_size, val_acc=e.output.val_acc,
                            chosen=e.output.candidate == chosen) for e in _of(events, TrainEvent, round_)]


def _val_after(events: list[TraceEvent], round_: int) -> float | None:
    """The validation accuracy of the model a round ended with (round 0: the base student)."""
    event = _one(events, StartEvent, 0) if round_ == 0 else _one(events, ChooseEvent, round_)
    return None if event is None else event.output.val_acc


def _effect(events: list[TraceEvent], round_: int) -> Effect | None:
    candidates = _candidates(events, round_)
    if not candidates:
        return None
    choice = _one(events, ChooseEvent, round_)
    later = sorted({e.round for e in _of(events, TrainEvent) if e.round > round_})
    return Effect(round=round_, candidates=candidates, finished=choice is not None,
                  chosen=choice.output.chosen if choice else None,
                  val_before=_val_after(events, round_ - 1), val_after=_val_after(events, round_) if choice else None,
                  also_trained_in=later)


def explain_sample(events: list[TraceEvent], sample_id: str) -> list[SampleSelection]:
    """Every selection of `sample_id`: round, strategy, gap, query, method, score, rank, the cases behind the gap,
    and its effect (the round's candidate adapters it entered, the one kept, val accuracy before and after)."""
    reasons = []
    for event in _of(events, SelectEvent):
        for item in event.output.items:
            if item.sample_id != sample_id:
                continue
            cases = event.inputs.cases_by_gap.get(item.gap, []) if item.gap else []
            gap_cases = []
            for case in cases:
                kept = _kept_critique(events, event.round, case)
                if kept is not None:
                    gap_cases.append(CaseReason(case=case, teacher=kept.teacher, wrong_step=kept.wrong_step,
                                                missing_skill=kept.missing_skill, explanation=kept.explanation))
            reasons.append(SampleSelection(
                round=event.round, strategy=event.output.strategy, sample_id=item.sample_id, gap=item.gap,
                gap_errors=event.inputs.gaps.get(item.gap, 0), query=item.query, method=item.method,
                score=item.score, rank=item.rank, cases=gap_cases, effect=_effect(events, event.round)))
    return reasons


def _critique_view(event: CritiqueEvent | CritiqueFaultEvent, gap_of: dict[str, str], kept_teacher: str | None
                   ) -> CritiqueView:
    if isinstance(event, CritiqueFaultEvent):
        return CritiqueView(teacher=event.agent, model=event.model, method=None, wrong_step=None, missing_skill=None,
                            explanation=event.output.message, gap=None, fault=event.output.fault, kept=False)
    verdict = event.output
    return CritiqueView(teacher=event.agent, model=event.model, method=verdict.method, wrong_step=verdict.wrong_step,
                        missing_skill=verdict.missing_skill, explanation=verdict.explanation,
                        gap=gap_of.get(verdict.missing_skill), fault=None, kept=event.agent == kept_teacher)


def explain_case(events: list[TraceEvent], case_id: str) -> list[CaseRound]:
    """What each teacher said about a wrong probe case, round by round, which gap its skill mapped to,
    and which critique the judge kept."""
    rounds = sorted({e.round for e in events
                     if isinstance(e, CritiqueEvent | CritiqueFaultEvent) and e.inputs.case == case_id})
    result = []
    for round_ in rounds:
        critiques = _critiques_for(events, round_, case_id)
        judge = _judge_of(events, round_, case_id)
        classify = _one(events, ClassifyEvent, round_)
        gap_of = {m.text: m.label for m in classify.output.mapping} if classify else {}
        answered = [c for c in critiques if isinstance(c, CritiqueEvent)]
        kept_teacher = judge.output.teacher if judge else answered[0].output.teacher if answered else None
        result.append(CaseRound(
            round=round_, student_output=answered[0].inputs.student_output if answered else None,
            critiques=[_critique_view(event, gap_of, kept_teacher) for event in critiques],
            judge=JudgeView(teacher=judge.output.teacher, reason=judge.output.reason) if judge else None))
    return result


def explain_round(events: list[TraceEvent], round_: int) -> RoundExplanation:
    """The round's decisions: probe, critiques and judging, gaps, selection, candidates, choice."""
    probe = _one(events, ProbeEvent, round_)
    classify = _one(events, ClassifyEvent, round_)
    select = _one(events, SelectEvent, round_)
    if round_ == 0:
        start = _one(events, StartEvent, 0)
        choice = None if start is None else ChoiceView(chosen=None, why="base student", val_acc=start.output.val_acc,
                                                       test_acc=start.output.test_acc, stop_reason=None)
    else:
        chose = _one(events, ChooseEvent, round_)
        choice = None if chose is None else ChoiceView(
            chosen=chose.output.chosen, why=chose.output.why, val_acc=chose.output.val_acc,
            test_acc=chose.output.test_acc, stop_reason=chose.output.stop_reason)
    return RoundExplanation(
        round=round_,
        probe=None if probe is None else ProbeView(samples=probe.inputs.samples, accuracy=probe.output.accuracy,
                                                   wrong_cases=len(probe.output.wrong_cases)),
        critiques=len(_of(events, CritiqueEvent, round_)),
        teacher_faults=len(_of(events, CritiqueFaultEvent, round_)),
        judged=len(_of(events, JudgeEvent, round_)),
        gaps=(classify.output.gaps if classify else select.inputs.gaps if select else {}),
        gap_source=classify.output.source if classify else None,
        diagnosis=classify.output.diagnosis if classify else None,
        selection=None if select is None else SelectionView(
            strategy=select.output.strategy, budget=select.inputs.budget, allocation=select.output.allocation,
            shortfall=select.output.shortfall, selected=len(select.output.items), excluded=select.inputs.excluded),
        candidates=_candidates(events, round_),
        val_before=_val_after(events, round_ - 1) if round_ > 0 else None,
        choice=choice,
    )


def rounds_of(events: list[TraceEvent]) -> list[int]:
    """The loop's rounds present in the trace (loading a data file is not one)."""
    return sorted({e.round for e in events if not isinstance(e, LoadEvent)})


def explain_run(events: list[TraceEvent], metrics: RunMetrics | None = None) -> RunOverview:
    """The run round by round, and why it stopped: from metrics.json when the run finished, else from the trace."""
    rounds = [explain_round(events, r) for r in rounds_of(events)]
    stop = metrics.stop_reason if metrics else None
    if stop is None:
        stop = next((r.choice.stop_reason for r in reversed(rounds) if r.choice and r.choice.stop_reason), None)
    return RunOverview(rounds=rounds, stop_reason=stop, events=len(events),
                       rows_skipped=sum(e.output.skipped for e in _of(events, LoadEvent)))
