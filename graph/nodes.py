"""The loop's nodes: each reads the state, calls one component, and returns a partial update.

Nodes hold no logic of their own beyond wiring: evaluation lives in
training/, critique and judging in agents/, gap classification and retrieval
in tools/ and agents/. Every decision is written to the trace with the ids
it was based on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from langgraph.types import Send

from gaptune.agents.baselines import fixed_selection, full_selection, random_selection
from gaptune.agents.gap_profile import gap_profile
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.retriever import Selection, SelectionItem, retrieve, split_budget
from gaptune.data.records import Critique
from gaptune.data.sample import Sample
from gaptune.graph.plateau import plateau_update, stop_reason
from gaptune.graph.resources import Resources
from gaptune.graph.state import LoopState, RoundRecord
from gaptune.tools.classify_gaps import make_classify_gaps_tool
from gaptune.training.lora_trainer import train_candidate


def start(res: Resources, state: LoopState) -> dict[str, Any]:
    """Round 0: the base student's val and test accuracy."""
    res.check_teacher_fits_data()
    val = res.evaluate(None, "val")
    test = res.evaluate(None, "test")
    res.save_attempts(res.run.attempts(0, "val"), val.attempts)
    res.save_attempts(res.run.attempts(0, "test"), test.attempts)
    record = RoundRecord(round=0, val_acc=val.accuracy, test_acc=test.accuracy, train_size=0, gaps={},
                         chosen=None, why="base student", candidates={}, teacher_usage={}, diagnosis={})
    res.trace.record("r0/start", round_=0, node="start", agent="evaluator", inputs={"student": str(res.student_path)},
                     output={"val_acc": val.accuracy, "test_acc": test.accuracy})
    return {"round": 0, "history": [record], "best_val": val.accuracy, "stale_rounds": 0, "used": [],
            "current_adapter": None, "stop_reason": None}


def probe(res: Resources, state: LoopState) -> dict[str, Any]:
    """Mine errors: the current student answers the probe split; wrong answers become cases."""
    round_ = state["round"] + 1
    evaluation = res.evaluate(state.get("current_adapter"), "probe", res.mining_set)
    res.save_attempts(res.run.attempts(round_, "probe"), evaluation.attempts)
    wrong = [a.sample_id for a in evaluation.attempts if not a.correct]
    res.trace.record(f"r{round_}/probe", round_=round_, node="probe", agent="evaluator",
                     inputs={"adapter": state.get("current_adapter"), "samples": len(evaluation.attempts)},
                     output={"accuracy": evaluation.accuracy, "wrong_cases": wrong})
    update: dict[str, Any] = {"round": round_, "wrong_cases": wrong, "critique_candidates": None, "critiques": None,
                              "teacher_faults": None, "candidates": None, "gap_hits": None, "gaps": {},
                              "selected": [], "diagnosis": {}}
    if not wrong and res.config.selection == "error-driven":
        update["stop_reason"] = "no errors left on the probe split"
    return update


def route_cases(res: Resources, state: LoopState) -> list[Send] | str:
    """One critique branch per (wrong case, critic): the teacher ensemble runs in parallel."""
    if state.get("stop_reason"):
        return "finish"
    return [Send("critique", {"round": state["round"], "case": case, "critic": name})
            for case in state["wrong_cases"] for name in res.critics]


def critique(res: Resources, payload: dict[str, Any]) -> dict[str, Any]:
    round_, case, name = payload["round"], payload["case"], payload["critic"]
    sample = res.probe_by_id[case]
    attempt = res.load_attempts(res.run.attempts(round_, "probe"))[case]
    started = time.perf_counter()
    event_id = f"r{round_}/critique/{case}/{name}"
    try:
        result = res.critics[name].critique(sample, attempt)
    except TeacherError as error:
        res.trace.record(event_id, round_=round_, node="critique", agent=name, inputs={"case": case},
                         output={"fault": error.kind, "message": str(error)}, latency_s=time.perf_counter() - started)
        return {"teacher_faults": [{"case": case, "critic": name, "kind": error.kind,
                                    "usage": error.usage.model_dump()}]}
    res.trace.record(event_id, round_=round_, node="critique", agent=name,
                     inputs={"case": case, "student_output": attempt.output}, output=result.model_dump(),
                     model=result.usage.model, latency_s=time.perf_counter() - started)
    return {"critique_candidates": [{"critic": name, "critique": result.model_dump(),
                                     "true_skill": true_skill(sample, result.wrong_step)}]}


def true_skill(sample: Sample, wrong_step: int | None) -> str | None:
    """The gold label of the step a critique blamed, when the data has one: kept to score diagnosis, never shown."""
    if not sample.steps or wrong_step is None:
        return None
    return sample.steps[min(wrong_step, len(sample.steps) - 1)].skill


def judge(res: Resources, state: LoopState) -> dict[str, Any]:
    """Pick one critique per case: the judge (or agreement voting) when several critics answered."""
    round_ = state["round"]
    by_case: dict[str, list[Critique]] = defaultdict(list)
    truth: dict[tuple[str, str], str | None] = {}
    order = list(res.critics)
    for entry in sorted(state.get("critique_candidates", []), key=lambda c: order.index(c["critic"])):
        critique_ = Critique.model_validate(entry["critique"])
        by_case[critique_.sample_id].append(critique_)
        truth[critique_.sample_id, critique_.teacher] = entry.get("true_skill")
    attempts = res.load_attempts(res.run.attempts(round_, "probe")) if by_case else {}
    chosen = []
    for case in state["wrong_cases"]:
        candidates = by_case.get(case)
        if not candidates:
            continue
        if len(candidates) == 1:
            pick, reason, usage = candidates[0], "single critic", {}
        else:
            decision = res.judge.pick(res.probe_by_id[case], attempts[case], candidates)
            pick, reason, usage = candidates[decision.index], decision.reason, decision.usage.model_dump()
            res.trace.record(f"r{round_}/judge/{case}", round_=round_, node="judge", agent=res.judge.name,
                             inputs={"case": case, "candidates": [c.model_dump() for c in candidates]},
                             output={"chosen": decision.index, "teacher": pick.teacher, "reason": reason},
                             model=decision.usage.model, latency_s=decision.usage.latency_s)
        chosen.append({**pick.model_dump(), "judge_reason": reason, "judge_usage": usage,
                       "true_skill": truth.get((case, pick.teacher))})
    return {"critiques": chosen}


def classify(res: Resources, state: LoopState) -> dict[str, Any]:
    """Map the critiques' free-text skills onto canonical gaps, score them against the truth, build the profile.

    `diagnosis` counts how many critiques' mapped gaps equal the blamed gold
    step's own label (where the data has one).
    """
    round_ = state["round"]
    critiques = state.get("critiques", [])
    skills = [c["missing_skill"] for c in critiques]
    tool = make_classify_gaps_tool(res.skill_vocabulary, embedding_model=res.config.retrieval.embedding_model)
    result = tool.invoke({"missing_skills": skills}) if skills else {"counts": {}, "mapping": []}
    gap_of_skill = {m["text"]: m["label"] for m in result["mapping"]}
    scored = [c for c in critiques if c.get("true_skill")]
    diagnosis = {"matched": sum(gap_of_skill.get(c["missing_skill"]) == c["true_skill"] for c in scored),
                 "total": len(scored)}
    attempts = res.load_attempts(res.run.attempts(round_, "probe")) if critiques else {}
    gaps, source = gap_profile(static=res.config.selection == "task-skills", query=res.config.retrieval.query,
                               error_gaps=result["counts"], target=res.splits["probe"],
                               wrong_steps=[(attempts[c["sample_id"]], c["wrong_step"]) for c in critiques])
    res.trace.record(f"r{round_}/classify", round_=round_, node="classify_gaps", agent="teacher",
                     inputs={"critiques": [c["sample_id"] for c in critiques]},
                     output={"gaps": gaps, "source": source, "mapping": result["mapping"], "diagnosis": diagnosis})
    return {"gaps": gaps, "gap_of_skill": gap_of_skill, "diagnosis": diagnosis}


def _round_budget(res: Resources, state: LoopState) -> int:
    return min(res.config.round_budget, max(0, res.config.budget - len(state.get("used", []))))


def route_selection(res: Resources, state: LoopState) -> list[Send] | str:
    """Error-driven: one retrieval branch per gap with its share of the budget; baselines select in one step."""
    if res.config.selection not in ("error-driven", "task-skills") or not state.get("gaps"):
        return "select_data"
    allocation = split_budget(state["gaps"], _round_budget(res, state))
    if not allocation:
        return "select_data"
    res.index  # noqa: B018 - open (or build) the index here, not concurrently in the branches
    return [Send("retrieve_gap", {"round": state["round"], "gap": gap, "quota": quota, "errors": state["gaps"][gap],
                                  "used": state.get("used", [])}) for gap, quota in allocation.items()]


def retrieve_gap(res: Resources, payload: dict[str, Any]) -> dict[str, Any]:
    """The retriever agent fills one gap's quota from the pool index, skipping samples already used."""
    selection = retrieve(res.index, {payload["gap"]: payload["errors"]}, payload["quota"], payload["used"],
                         res.config.retrieval)
    return {"gap_hits": [{"gap": payload["gap"], "quota": payload["quota"],
                          "items": [item.model_dump() for item in selection.items]}]}


def merge_selection(res: Resources, state: LoopState) -> dict[str, Any]:
    """Dedupe across gaps (a sample wanted by two gaps stays with the one ranking it higher), then top up."""
    used = state.get("used", [])
    hits = sorted(state.get("gap_hits", []), key=lambda h: (-state["gaps"][h["gap"]], h["gap"]))
    claims = sorted(((item["rank"], position, item) for position, h in enumerate(hits) for item in h["items"]),
                    key=lambda claim: claim[:2])
    chosen: dict[str, SelectionItem] = {}
    for _, _, item in claims:
        chosen.setdefault(item["sample_id"], SelectionItem.model_validate(item))
    for h in hits:
        deficit = h["quota"] - sum(1 for item in chosen.values() if item.gap == h["gap"])
        if deficit > 0:
            extra = retrieve(res.index, {h["gap"]: state["gaps"][h["gap"]]}, deficit, [*used, *chosen],
                             res.config.retrieval)
            chosen.update({item.sample_id: item for item in extra.items})
    allocation = {h["gap"]: h["quota"] for h in hits}
    filled = {gap: sum(1 for item in chosen.values() if item.gap == gap) for gap in allocation}
    selection = Selection(strategy=f"{res.config.selection}/{res.config.retrieval.method}", budget=sum(allocation.values()),
                          allocation=allocation, items=list(chosen.values()),
                          shortfall={gap: allocation[gap] - n for gap, n in filled.items() if n < allocation[gap]})
    return _record_selection(res, state, selection)


def select_data(res: Resources, state: LoopState) -> dict[str, Any]:
    """Arms that do not retrieve per gap (random, full, ceiling, fixed, probe-only), or an empty selection."""
    round_, config = state["round"], res.config
    used = state.get("used", [])
    budget = _round_budget(res, state)
    seed = config.seed * 1000 + round_
    if config.selection == "random":
        selection = random_selection(list(res.pool), budget, used, seed=seed)
    elif config.selection == "full":
        selection = full_selection(list(res.pool), used)
    elif config.selection == "ceiling":
        selection = fixed_selection(list(res.ceiling_samples), budget, used, strategy="ceiling")
    elif config.selection == "fixed":
        selection = fixed_selection(res.fixed_ids, budget, used, strategy="fixed")
    else:
        selection = Selection(strategy=config.selection, budget=0 if config.selection == "probe-only" else budget,
                              allocation={}, items=[])
    return _record_selection(res, state, selection)


def _record_selection(res: Resources, state: LoopState, selection: Selection) -> dict[str, Any]:
    """Trace every chosen sample with the gap, query, score and rank that chose it, and the cases behind the gap."""
    round_, used = state["round"], state.get("used", [])
    cases_by_gap: dict[str, list[str]] = defaultdict(list)
    for critique_ in state.get("critiques", []):
        cases_by_gap[state.get("gap_of_skill", {}).get(critique_["missing_skill"], "")].append(critique_["sample_id"])
    res.trace.record(f"r{round_}/select", round_=round_, node="select_data", agent="retriever",
                     inputs={"gaps": state.get("gaps", {}), "budget": selection.budget, "excluded": len(used),
                             "cases_by_gap": dict(cases_by_gap)},
                     output={"strategy": selection.strategy, "allocation": selection.allocation,
                             "shortfall": selection.shortfall, "items": [i.model_dump() for i in selection.items]})
    update: dict[str, Any] = {"selected": selection.sample_ids, "used": [*used, *selection.sample_ids]}
    if not selection.items and res.config.selection != "probe-only":
        update["stop_reason"] = "nothing new to train on: no gap found, or the pool has no unused sample for it"
    return update


def route_candidates(res: Resources, state: LoopState) -> list[Send] | str:
    """One training branch per candidate adapter kind: they compete on validation accuracy."""
    if state.get("stop_reason"):
        return "finish"
    return [Send("train", {"round": state["round"], "candidate": kind, "used": state["used"],
                           "previous": state.get("current_adapter")}) for kind in res.config.trainer.candidates]


def train(res: Resources, payload: dict[str, Any]) -> dict[str, Any]:
    round_, kind = payload["round"], payload["candidate"]
    train_set = [res.training_sample(sample_id) for sample_id in payload["used"]] + res.probe_training_set
    adapter = res.run.adapter(round_, kind)
    started = time.perf_counter()
    info = train_candidate(res.student_path, kind, train_set, adapter, res.config.trainer,
                           previous=payload["previous"], seed=res.config.seed * 1000 + round_)
    val = res.evaluate(str(adapter), "val")
    res.save_attempts(res.run.attempts(round_, "val", kind), val.attempts)
    result = {"candidate": kind, "adapter": str(adapter), "val_acc": val.accuracy, "train_size": len(train_set),
              "steps": info.steps, "final_loss": info.final_loss}
    res.trace.record(f"r{round_}/train/{kind}", round_=round_, node="train", agent="trainer",
                     inputs={"candidate": kind, "previous": payload["previous"], "train_size": len(train_set),
                             "pool_samples": len(payload["used"])},
                     output=result, latency_s=time.perf_counter() - started)
    return {"candidates": [result]}


def _usage_totals(state: LoopState) -> dict[str, float | None]:
    totals: dict[str, float] = defaultdict(float)
    usages = [c["critique"].get("usage") or {} for c in state.get("critique_candidates", [])]
    usages += [c.get("judge_usage") or {} for c in state.get("critiques", [])]
    usages += [f.get("usage") or {} for f in state.get("teacher_faults", [])]
    for usage in usages:
        for key in ("calls", "tokens_in", "tokens_out", "latency_s", "cost_usd"):
            totals[key] += float(usage.get(key, 0) or 0)
    # Every fault the teacher threw, recovered by a retry or not; failed_cases: cases given up after all retries.
    totals["faults"] = float(sum(sum((usage.get("faults") or {}).values()) for usage in usages))
    totals["failed_cases"] = float(len(state.get("teacher_faults", [])))
    priced = any(usage.get("cost_usd") is not None for usage in usages)
    return {**totals, "cost_usd": totals["cost_usd"] if priced else None}


def choose(res: Resources, state: LoopState) -> dict[str, Any]:
    """Keep the candidate with the best val accuracy, measure test, decide whether to go on."""
    round_, config = state["round"], res.config
    order = config.trainer.candidates
    candidates = sorted(state["candidates"], key=lambda c: (-c["val_acc"], order.index(c["candidate"])))
    best = candidates[0]
    scores = ", ".join(f"{c['candidate']}={c['val_acc']:.3f}" for c in candidates)
    why = f"{best['candidate']}: highest val accuracy ({best['val_acc']:.3f})" + (
        f" among {scores}" if len(candidates) > 1 else "")
    test = res.evaluate(best["adapter"], "test")
    res.save_attempts(res.run.attempts(round_, "test"), test.attempts)
    best_val, stale = plateau_update(state["best_val"], state["stale_rounds"], best["val_acc"], config.min_delta)
    record = RoundRecord(round=round_, val_acc=best["val_acc"], test_acc=test.accuracy, train_size=best["train_size"],
                         gaps=state.get("gaps", {}), chosen=best["candidate"], why=why,
                         candidates={c["candidate"]: c["val_acc"] for c in candidates},
                         teacher_usage=_usage_totals(state), diagnosis=state.get("diagnosis", {}))
    reason = stop_reason(round_=round_, max_rounds=config.max_rounds, stale_rounds=stale, patience=config.patience,
                         used=len(state.get("used", [])), budget=config.budget, selection=config.selection)
    res.trace.record(f"r{round_}/choose", round_=round_, node="choose", agent="selector",
                     inputs={"candidates": [c["candidate"] for c in candidates]},
                     output={"chosen": best["candidate"], "why": why, "val_acc": best["val_acc"],
                             "test_acc": test.accuracy, "stop_reason": reason})
    return {"history": [*state["history"], record], "current_adapter": best["adapter"], "best_val": best_val,
            "stale_rounds": stale, "stop_reason": reason}


def route_after_choose(state: LoopState) -> str:
    return "finish" if state.get("stop_reason") else "probe"


def finish(res: Resources, state: LoopState) -> dict[str, Any]:
    from gaptune.graph.report import write_metrics_and_report

    write_metrics_and_report(res, state)
    return {}
