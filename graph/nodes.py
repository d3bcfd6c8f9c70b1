"""The loop's nodes: each reads the state, calls one component, traces the decision, and returns its update.

Nodes only wire: evaluation and training live in training/, critique, judging,
gap profiles and retrieval in agents/, gap classification in tools/, the
keep-or-stop decisions in graph/plateau. Resources (samples, pool, index,
models, teachers) come from the runtime context. Every decision is written to
the trace with the ids it was based on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Overwrite, Send

from gaptune.agents.gap_profile import diagnosis_score, profile_gap, true_skill
from gaptune.agents.judge import decide
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.retriever import merge_gaps, search_gap, split_budget
from gaptune.agents.selectors.protocol import GapEvidence, GapSelector, PoolSelector
from gaptune.agents.teacher_health import CaseFault, check_round
from gaptune.data.records import Critique, Selection, Usage, usage_totals
from gaptune.graph import events as ev
from gaptune.graph.plateau import best_candidate, plateau_update, replaces_incumbent, stop_reason
from gaptune.graph.resources import Resources
from gaptune.graph.round_inputs import StateRoundInputs, round_budget
from gaptune.graph.state import (
    CandidateResult,
    ChooseUpdate,
    ClassifyUpdate,
    CritiqueCandidate,
    CritiqueTask,
    CritiqueUpdate,
    GapHits,
    JudgedCritique,
    JudgeUpdate,
    LoopState,
    ProbeUpdate,
    RetrieveTask,
    RetrieveUpdate,
    RoundRecord,
    SelectionUpdate,
    StartUpdate,
    TeacherFault,
    TrainUpdate,
)
from gaptune.tools.classify_gaps import classify_gaps
from gaptune.training.lora_trainer import train_candidate

Context = Runtime[Resources]


def start(state: LoopState, runtime: Context) -> StartUpdate:
    """Round 0: the base student's val and test accuracy."""
    res = runtime.context
    val = res.student.evaluate(None, "val")
    test = res.student.evaluate(None, "test")
    res.student.save_attempts(res.run.attempts(0, "val"), val.attempts)
    res.student.save_attempts(res.run.attempts(0, "test"), test.attempts)
    record = RoundRecord(round=0, val_acc=val.accuracy, test_acc=test.accuracy, train_size=0, gaps={},
                         chosen=None, why="base student", candidates={}, teacher_usage={}, diagnosis={})
    res.trace.record(ev.StartEvent(event_id="r0/start", round=0, agent="evaluator",
                                   inputs=ev.StartInputs(student=str(res.student.path)),
                                   output=ev.Scores(val_acc=val.accuracy, test_acc=test.accuracy)))
    return {"round": 0, "history": [record], "best_val": val.accuracy, "stale_rounds": 0, "used": [],
            "current_adapter": None, "stop_reason": None}


def probe(state: LoopState, runtime: Context) -> ProbeUpdate:
    """Mine errors: the current student answers the probe split; wrong answers become cases. Starts a round."""
    res = runtime.context
    round_ = state["round"] + 1
    evaluation = res.student.evaluate(state.get("current_adapter"), "probe", res.data.mining_set)
    res.student.save_attempts(res.run.attempts(round_, "probe"), evaluation.attempts)
    wrong = [a.sample_id for a in evaluation.attempts if not a.correct]
    res.trace.record(ev.ProbeEvent(
        event_id=f"r{round_}/probe", round=round_, agent="evaluator",
        inputs=ev.ProbeInputs(adapter=state.get("current_adapter"), samples=len(evaluation.attempts)),
        output=ev.ProbeOutput(accuracy=evaluation.accuracy, wrong_cases=wrong)))
    update = ProbeUpdate(round=round_, wrong_cases=wrong, critics=list(res.teachers.critics), critique_candidates=Overwrite([]),
                         teacher_faults=Overwrite([]), gap_hits=Overwrite([]), candidates=Overwrite([]),
                         critiques=[], gaps={}, diagnosis={}, selected=[])
    if not wrong and res.selector.needs.errors:
        update["stop_reason"] = "no errors left on the probe split"
    return update


def route_cases(state: LoopState) -> list[Send] | str:
    """One critique branch per (wrong case, critic) not answered yet: the teacher ensemble runs in parallel.

    Pure on the state, so a resumed run that retries a round's failed cases
    (`runner.resume`) sends exactly the pairs still missing a critique.
    """
    if state.get("stop_reason"):
        return "finish"
    answered = {(c["critique"].sample_id, c["critic"]) for c in state.get("critique_candidates", [])}
    return [Send("critique", CritiqueTask(round=state["round"], case=case, critic=name))
            for case in state["wrong_cases"] for name in state["critics"] if (case, name) not in answered]


def critique(task: CritiqueTask, runtime: Context) -> CritiqueUpdate:
    """One critic on one wrong case: the first wrong step and the missing skill, or a counted fault.

    A critic that failed `teacher.fail_fast_after` cases in a row this round is
    not asked again this round: the case is recorded as its fault at once.
    """
    res = runtime.context
    round_, case, name = task["round"], task["case"], task["critic"]
    sample = res.data.probe_by_id[case]
    attempt = res.student.probe_attempts(round_)[case]
    started = time.perf_counter()
    event_id = f"r{round_}/critique/{case}/{name}"
    blocked = res.teachers.fail_fast.blocked(round_, name)
    try:
        if blocked is not None:
            raise blocked
        result = res.teachers.critics[name].critique(sample, attempt)
    except TeacherError as error:
        if blocked is None:
            res.teachers.fail_fast.record(round_, name, error)
        res.trace.record(ev.CritiqueFaultEvent(event_id=event_id, round=round_, agent=name,
                                               inputs=ev.CaseInput(case=case),
                                               output=ev.Fault(fault=error.kind, message=str(error)),
                                               latency_s=time.perf_counter() - started))
        return {"teacher_faults": [TeacherFault(case=case, critic=name, kind=error.kind, message=str(error),
                                                usage=error.usage)]}
    res.teachers.fail_fast.record(round_, name, None)
    res.trace.record(ev.CritiqueEvent(event_id=event_id, round=round_, agent=name,
                                      inputs=ev.CritiqueInputs(case=case, student_output=attempt.output),
                                      output=result, model=result.usage.model,
                                      latency_s=time.perf_counter() - started))
    return {"critique_candidates": [CritiqueCandidate(critic=name, critique=result,
                                                      true_skill=true_skill(sample, result.wrong_step))]}


def judge(state: LoopState, runtime: Context) -> JudgeUpdate:
    """One critique per case: the judge (or agreement voting) picks when several critics answered."""
    res = runtime.context
    round_ = state["round"]
    faults = state.get("teacher_faults", [])
    check_round([CaseFault(critic=f["critic"], kind=f["kind"], message=f.get("message", "")) for f in faults],
                cases=len(state["wrong_cases"]), critics={name: c.where for name, c in res.teachers.critics.items()},
                round_=round_, max_failed_share=res.config.teacher.max_failed_share,
                resume_hint=f"continue with `gaptune resume {res.run.root}` (it retries the failed cases)")
    order = list(res.teachers.critics)
    by_case: dict[str, list[Critique]] = defaultdict(list)
    truth: dict[tuple[str, str], str | None] = {}
    for entry in sorted(state.get("critique_candidates", []), key=lambda c: order.index(c["critic"])):
        critique_ = entry["critique"]
        by_case[critique_.sample_id].append(critique_)
        truth[critique_.sample_id, critique_.teacher] = entry["true_skill"]
    kept: list[JudgedCritique] = []
    for case in (case for case in state["wrong_cases"] if case in by_case):
        candidates = by_case[case]
        decision = decide(res.teachers.judge, res.data.probe_by_id[case], res.student.probe_attempts(round_)[case], candidates)
        pick = candidates[decision.index if decision else 0]
        if decision is not None:
            res.trace.record(ev.JudgeEvent(
                event_id=f"r{round_}/judge/{case}", round=round_, agent=res.teachers.judge.name,
                inputs=ev.JudgeInputs(case=case, candidates=candidates),
                output=ev.JudgeOutput(chosen=decision.index, teacher=pick.teacher, reason=decision.reason),
                model=decision.usage.model, latency_s=decision.usage.latency_s))
        kept.append(JudgedCritique(critique=pick, judge_reason=decision.reason if decision else "single critic",
                                   judge_usage=decision.usage if decision else Usage(),
                                   true_skill=truth.get((case, pick.teacher))))
    return {"critiques": kept}


def classify(state: LoopState, runtime: Context) -> ClassifyUpdate:
    """Map the critiques' free-text skills onto canonical gaps, score them against the truth, build the profile."""
    res = runtime.context
    round_ = state["round"]
    critiques = [c["critique"] for c in state.get("critiques", [])]
    result = classify_gaps([c.missing_skill for c in critiques], res.data.skill_vocabulary,
                           embedding_model=res.config.retrieval.embedding_model)
    gap_of_skill = {m.text: m.label for m in result.mapping}
    diagnosis = diagnosis_score([(c["critique"].missing_skill, c["true_skill"]) for c in state.get("critiques", [])],
                                gap_of_skill)
    attempts = res.student.probe_attempts(round_) if critiques else {}
    evidence = GapEvidence(query=res.config.retrieval.query, error_gaps=result.counts, target=res.data.splits["probe"],
                           wrong_steps=[(attempts[c.sample_id], c.wrong_step) for c in critiques])
    selector = res.selector
    # pool selectors do not retrieve by gaps; theirs record what the errors were, as skill labels
    gaps, source = selector.gap_profile(evidence) if isinstance(selector, GapSelector) else (dict(result.counts), "errors")
    case_gaps = {c.sample_id: profile_gap(gaps, attempts[c.sample_id], c.wrong_step, gap_of_skill.get(c.missing_skill, ""))
                 for c in critiques}
    res.trace.record(ev.ClassifyEvent(
        event_id=f"r{round_}/classify", round=round_, agent="teacher",
        inputs=ev.ClassifyInputs(critiques=[c.sample_id for c in critiques]),
        output=ev.ClassifyOutput(gaps=gaps, source=source, mapping=result.mapping, diagnosis=diagnosis)))
    return {"gaps": gaps, "case_gaps": case_gaps, "diagnosis": diagnosis}


def route_selection(state: LoopState, runtime: Context) -> list[Send] | str:
    """Gap selectors: one retrieval branch per gap with its share of the budget; pool selectors select in one step."""
    res = runtime.context
    if not isinstance(res.selector, GapSelector) or not state.get("gaps"):
        return "select_data"
    allocation = split_budget(state["gaps"], round_budget(res, state))
    if not allocation:
        return "select_data"
    return [Send("retrieve_gap", RetrieveTask(round=state["round"], gap=gap, quota=quota, errors=state["gaps"][gap],
                                              used=state.get("used", []))) for gap, quota in allocation.items()]


def retrieve_gap(task: RetrieveTask, runtime: Context) -> RetrieveUpdate:
    """The retriever agent ranks pool samples for one gap, skipping samples already used."""
    res = runtime.context
    items = search_gap(res.search.index, task["gap"], task["quota"], task["used"], res.config.retrieval)
    return {"gap_hits": [GapHits(gap=task["gap"], quota=task["quota"], items=items)]}


def merge_selection(state: LoopState, runtime: Context) -> SelectionUpdate:
    """The gaps' rankings into one selection (cross-gap dedupe and top-up happen in the retriever)."""
    res = runtime.context
    hits = state.get("gap_hits", [])
    selection = merge_gaps(res.search.index, {h["gap"]: h["items"] for h in hits},
                           {h["gap"]: h["quota"] for h in hits}, state["gaps"], state.get("used", []),
                           res.config.retrieval, strategy=f"{res.config.selection}/{res.config.retrieval.method}")
    return _record_selection(res, state, selection, node="merge_selection")


def select_data(state: LoopState, runtime: Context) -> SelectionUpdate:
    """Pool selectors (random, full, ceiling, fixed, probe-only, ...) in one step; a gap selector without gaps
    selects nothing."""
    res = runtime.context
    selector = res.selector
    if isinstance(selector, PoolSelector):
        selection = selector.select(StateRoundInputs(res, state))
    else:
        selection = Selection(strategy=selector.name, budget=round_budget(res, state), allocation={}, items=[])
    return _record_selection(res, state, selection, node="select_data")


def _record_selection(res: Resources, state: LoopState, selection: Selection,
                      *, node: Literal["merge_selection", "select_data"]) -> SelectionUpdate:
    """Trace every chosen sample with the gap, query, score and rank that chose it, and the cases behind the gap."""
    round_, used = state["round"], state.get("used", [])
    cases_by_gap: dict[str, list[str]] = defaultdict(list)
    for case, gap in state.get("case_gaps", {}).items():
        cases_by_gap[gap].append(case)
    res.trace.record(ev.SelectEvent(
        event_id=f"r{round_}/select", round=round_, node=node, agent="retriever",
        inputs=ev.SelectInputs(gaps=state.get("gaps", {}), budget=selection.budget, excluded=len(used),
                               cases_by_gap=dict(cases_by_gap)),
        output=ev.SelectOutput(strategy=selection.strategy, allocation=selection.allocation,
                               shortfall=selection.shortfall, items=selection.items)))
    update = SelectionUpdate(selected=selection.sample_ids, used=[*used, *selection.sample_ids])
    if not selection.items and res.selector.needs.pool_data:
        update["stop_reason"] = "nothing new to train on: no gap found, or the pool has no unused sample for it"
    return update


def route_training(state: LoopState) -> str:
    """Train when the selection left something to train on; else the run is over."""
    return "finish" if state.get("stop_reason") else "train"


def train(state: LoopState, runtime: Context) -> TrainUpdate:
    """Train each candidate adapter kind, one after another, on every pool sample used so far plus the probe's
    training part; validate each.

    One after another in this process: candidates share nothing (no global RNG
    draw, no accelerate state, no lock), and on a CPU two at once only split
    the same cores (benchmarks/candidate_rounds.py).
    """
    res = runtime.context
    round_, used, previous = state["round"], state["used"], state.get("current_adapter")
    train_set = [res.data.training_sample(sample_id) for sample_id in used] + res.data.probe_training_set
    results = []
    for kind in res.config.trainer.candidates:
        adapter = res.run.adapter(round_, kind)
        started = time.perf_counter()
        info = train_candidate(res.student.path, kind, train_set, adapter, res.config.trainer,
                               previous=previous, seed=res.config.seed * 1000 + round_)
        val = res.student.evaluate(str(adapter), "val")
        res.student.save_attempts(res.run.attempts(round_, "val", kind), val.attempts)
        result = CandidateResult(candidate=kind, adapter=str(adapter), val_acc=val.accuracy, train_size=len(train_set),
                                 steps=info.steps, final_loss=info.final_loss)
        res.trace.record(ev.TrainEvent(
            event_id=f"r{round_}/train/{kind}", round=round_, agent="trainer",
            inputs=ev.TrainInputs(candidate=kind, previous=previous, train_size=len(train_set), pool_samples=len(used)),
            output=ev.TrainOutput.model_validate(result), latency_s=time.perf_counter() - started))
        results.append(result)
    return {"candidates": results}


def choose(state: LoopState, runtime: Context) -> ChooseUpdate:
    """Keep the candidate with the best val accuracy if it is not worse than the adapter in use; decide whether to go on."""
    res = runtime.context
    round_, config = state["round"], res.config
    best, why = best_candidate(state["candidates"], config.trainer.candidates)
    incumbent = state["history"][-1]
    replaced = replaces_incumbent(best["val_acc"], incumbent["val_acc"], config.replace_adapter)
    adapter: str | None
    if replaced:
        test = res.student.evaluate(best["adapter"], "test")
        res.student.save_attempts(res.run.attempts(round_, "test"), test.attempts)
        val_acc, test_acc, train_size, adapter = best["val_acc"], test.accuracy, best["train_size"], best["adapter"]
    else:
        why = (f"kept the previous adapter: the best candidate, {best['candidate']}, reached val {best['val_acc']:.3f}"
               f" < {incumbent['val_acc']:.3f} (replace_adapter: {config.replace_adapter})")
        val_acc, test_acc, train_size = incumbent["val_acc"], incumbent["test_acc"], incumbent["train_size"]
        adapter = state.get("current_adapter")
    best_val, stale = plateau_update(state["best_val"], state["stale_rounds"], val_acc, config.min_delta)
    usages = [c["critique"].usage for c in state.get("critique_candidates", [])]
    usages += [c["judge_usage"] for c in state.get("critiques", [])]
    usages += [f["usage"] for f in state.get("teacher_faults", [])]
    record = RoundRecord(round=round_, val_acc=val_acc, test_acc=test_acc, train_size=train_size,
                         gaps=state.get("gaps", {}), chosen=best["candidate"] if replaced else None, why=why,
                         candidates={c["candidate"]: c["val_acc"] for c in state["candidates"]},
                         teacher_usage=usage_totals(usages, failed_cases=len(state.get("teacher_faults", []))),
                         diagnosis=state.get("diagnosis", {}))
    reason = stop_reason(round_=round_, max_rounds=config.max_rounds, stale_rounds=stale, patience=config.patience,
                         used=len(state.get("used", [])), budget=config.budget,
                         selector_stop=res.selector.stop_after_round())
    res.trace.record(ev.ChooseEvent(
        event_id=f"r{round_}/choose", round=round_, agent="selector",
        inputs=ev.ChooseInputs(candidates=[c["candidate"] for c in state["candidates"]],
                               incumbent_val_acc=incumbent["val_acc"]),
        output=ev.ChooseOutput(chosen=record["chosen"], why=why, val_acc=val_acc, test_acc=test_acc,
                               stop_reason=reason)))
    return {"history": [*state["history"], record], "current_adapter": adapter, "best_val": best_val,
            "stale_rounds": stale, "stop_reason": reason}


def route_after_choose(state: LoopState) -> str:
    return "finish" if state.get("stop_reason") else "probe"


def finish(state: LoopState, runtime: Context) -> dict[str, object]:
    """Write metrics.json and the report."""
    from gaptune.graph.report import write_metrics_and_report

    write_metrics_and_report(runtime.context, dict(state))
    return {}
