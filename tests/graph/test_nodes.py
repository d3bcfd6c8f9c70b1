"""The loop's nodes called directly, one at a time, on real resources (world splits, a real pool index, real teachers)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from langgraph.runtime import Runtime
from langgraph.types import Overwrite, Send

from gaptune.agents.llm.errors import TeacherError, TeacherUnavailable
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique, Usage, usage_totals
from gaptune.data.sample import format_reasoning
from gaptune.graph import nodes
from gaptune.graph.config import load_config
from gaptune.graph.events import ClassifyEvent, JudgeEvent, SelectEvent
from gaptune.graph.plateau import best_candidate
from gaptune.graph.resources import Resources
from gaptune.graph.run_dir import RunDir
from gaptune.graph.state import CandidateResult, JudgedCritique, LoopState
from gaptune.graph.trace import read_trace
from gaptune.training.evaluate import Evaluation, Score


def _resources(tmp_path: Path, cache_dir: Path, *extra: str) -> Resources:
    overrides = [f"cache_dir={cache_dir}", "task.probe_size=30", "task.val_size=10", "task.test_size=10",
                 "pool.size=600", "round_budget=20", "budget=40", *extra]
    run = RunDir(tmp_path / "run")
    run.root.mkdir(parents=True)
    return Resources(load_config(None, overrides), run)


def _wrong_attempts(res: Resources, round_: int) -> list[Attempt]:
    """Each mined probe sample answered with its gold steps but the first step's number changed: a counting slip."""
    attempts = []
    for sample in res.data.mining_set:
        steps = [step.text for step in sample.steps or []]
        steps[0] = steps[0].rsplit("=", 1)[0] + "= 9"
        attempts.append(Attempt(sample_id=sample.id, output=format_reasoning(steps, "no"), steps=steps,
                                answer="no", correct=False))
    res.student.save_attempts(res.run.attempts(round_, "probe"), attempts)
    return attempts


@pytest.fixture
def res(tmp_path: Path, cache_dir: Path) -> Resources:
    return _resources(tmp_path, cache_dir, "teacher.critics=[{backend: reader}, {backend: reference}]")


def test_route_cases_sends_one_typed_task_per_case_and_critic_not_answered_yet() -> None:
    state = LoopState(round=1, wrong_cases=["a", "b"], critics=["reader", "reference"])
    sends = nodes.route_cases(state)
    assert isinstance(sends, list) and all(isinstance(s, Send) and s.node == "critique" for s in sends)
    assert [(s.arg["case"], s.arg["critic"]) for s in sends] == [
        ("a", "reader"), ("a", "reference"), ("b", "reader"), ("b", "reference")]
    answered = Critique(sample_id="a", teacher="reader", method="reader/first-wrong", wrong_step=0,
                        missing_skill="counting", explanation="", usage=Usage())
    state["critique_candidates"] = [{"critic": "reader", "critique": answered, "true_skill": None}]
    assert [(s.arg["case"], s.arg["critic"]) for s in nodes.route_cases(state)] == [
        ("a", "reference"), ("b", "reader"), ("b", "reference")]
    assert nodes.route_cases(LoopState(round=1, wrong_cases=["a"], critics=["reader"], stop_reason="done")) == "finish"


def test_critique_then_judge_keep_one_verdict_per_case_with_its_true_label(res: Resources) -> None:
    attempts = _wrong_attempts(res, 1)
    runtime = Runtime(context=res)
    candidates = []
    for attempt in attempts[:3]:
        for critic in res.teachers.critics:
            update = nodes.critique({"round": 1, "case": attempt.sample_id, "critic": critic}, runtime)
            assert "teacher_faults" not in update
            candidates += update["critique_candidates"]
    assert {c["critique"].wrong_step for c in candidates} == {0}
    sample = res.data.probe_by_id[attempts[0].sample_id]
    assert candidates[0]["true_skill"] == (sample.steps or [])[0].skill
    state = LoopState(round=1, wrong_cases=[a.sample_id for a in attempts[:3]], critique_candidates=candidates)
    kept = nodes.judge(state, runtime)["critiques"]
    assert [k["critique"].sample_id for k in kept] == state["wrong_cases"]
    # two critics, one case each: the voting judge decides and says why, in the trace too
    assert all("critics agree" in k["judge_reason"] for k in kept)
    judged = [e for e in read_trace(res.run.trace) if isinstance(e, JudgeEvent)]
    assert len(judged) == 3 and judged[0].output.chosen in (0, 1)


def test_classify_maps_skills_scores_diagnosis_and_the_static_arm_ignores_errors(tmp_path: Path, cache_dir: Path) -> None:
    # (selection, its overrides, the gap profile's source): the default queries by wrong step text, `skill` by label;
    # a pool selector (random) retrieves by no gap, and records what the errors were as skill labels
    arms = (("error-driven", ["retrieval.query=skill"], "errors"), ("error-driven", [], "wrong step texts"),
            ("random", [], "errors"), ("task-skills", ["retrieval.query=skill"], "target gold skills (static, errors ignored)"))
    for number, (selection, extra, expected_source) in enumerate(arms):
        res = _resources(tmp_path / str(number), cache_dir, f"selection={selection}", *extra)
        attempts = _wrong_attempts(res, 1)
        critiques = [JudgedCritique(critique=Critique(sample_id=a.sample_id, teacher="t", method="m", wrong_step=0,
                                                      missing_skill="Counting."),
                                    judge_reason="single critic", judge_usage=Usage(), true_skill="counting")
                     for a in attempts]
        update = nodes.classify(LoopState(round=1, critiques=critiques), Runtime(context=res))
        assert update["diagnosis"] == {"matched": len(attempts), "total": len(attempts)}
        event = next(e for e in read_trace(res.run.trace) if isinstance(e, ClassifyEvent))
        assert event.node == "classify" and event.output.source == expected_source
        # each case is filed under the gap of the profile it counts toward: the trace's "why was this trained"
        if expected_source == "errors":
            assert update["gaps"] == {"counting": len(attempts)}
            assert update["case_gaps"] == {a.sample_id: "counting" for a in attempts}
        elif expected_source == "wrong step texts":
            # each gap is the wrong first step exactly as the student wrote it
            assert update["gaps"] == dict(Counter(a.steps[0] for a in attempts))
            assert update["case_gaps"] == {a.sample_id: a.steps[0] for a in attempts}
        else:
            assert set(update["gaps"]) >= {"counting", "comparison"}


def test_routing_has_no_side_effects_and_retrieval_dedupes_across_gaps(res: Resources) -> None:
    state = LoopState(round=1, gaps={"counting": 3, "comparison": 1}, used=[], critiques=[], case_gaps={})
    sends = nodes.route_selection(state, Runtime(context=res))
    assert "_opened_index" not in res.search.__dict__, "a router must not open (or build) the index"
    assert isinstance(sends, list)
    assert {s.arg["gap"]: s.arg["quota"] for s in sends} == {"counting": 15, "comparison": 5}
    hits = []
    for send in sends:
        hits += nodes.retrieve_gap(send.arg, Runtime(context=res))["gap_hits"]
    # make both gaps want the same sample: it must stay with the gap ranking it higher, once
    shared = hits[0]["items"][0]
    hits[1]["items"].insert(0, shared.model_copy(update={"gap": hits[1]["gap"], "rank": 5}))
    update = nodes.merge_selection(LoopState(**state, gap_hits=hits), Runtime(context=res))
    assert len(update["selected"]) == len(set(update["selected"])) == 20
    event = next(e for e in read_trace(res.run.trace) if isinstance(e, SelectEvent))
    owner = {item.sample_id: item.gap for item in event.output.items}
    assert owner[shared.sample_id] == hits[0]["gap"]
    assert event.node == "merge_selection" and event.output.shortfall == {}


def test_probe_mines_wrong_cases_and_starts_a_round_by_overwriting_branch_lists(
        res: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = _wrong_attempts(res, 1)
    right = attempts[0].model_copy(update={"correct": True})
    mined = [right, *attempts[1:]]
    # the evaluation itself is tested in test_student/test_loop; here only what probe does with its attempts
    monkeypatch.setattr(res.student, "evaluate", lambda adapter, split, samples=None: evaluation_of(mined))
    update = nodes.probe(LoopState(round=0, current_adapter=None), Runtime(context=res))
    assert update["round"] == 1 and update["wrong_cases"] == [a.sample_id for a in attempts[1:]]
    for key in ("critique_candidates", "teacher_faults", "gap_hits", "candidates"):
        value = update[key]  # type: ignore[literal-required]
        assert isinstance(value, Overwrite) and value.value == []
    assert res.student.probe_attempts(1)[right.sample_id].correct
    assert "stop_reason" not in update


def evaluation_of(attempts: list[Attempt]) -> Evaluation:
    right = sum(a.correct for a in attempts)
    return Evaluation(overall=Score(correct=right, total=len(attempts)), per_skill={}, per_family={}, attempts=attempts)


def test_best_candidate_and_round_usage_totals() -> None:
    results = [CandidateResult(candidate="lora", adapter="a", val_acc=0.5, train_size=1, steps=1, final_loss=0.1),
               CandidateResult(candidate="connector", adapter="b", val_acc=0.5, train_size=1, steps=1, final_loss=0.1),
               CandidateResult(candidate="in-context", adapter="c", val_acc=0.7, train_size=1, steps=1, final_loss=0.1)]
    best, why = best_candidate(results, ["lora", "connector", "in-context"])
    assert best["candidate"] == "in-context" and "among in-context=0.700, lora=0.500, connector=0.500" in why
    assert best_candidate(results[:2], ["connector", "lora"])[0]["candidate"] == "connector"  # tie: config order
    totals = usage_totals([Usage(calls=2, tokens_in=10, faults={"rate_limit": 2}), Usage(calls=1, cost_usd=0.5,
                                                                                          faults={"timeout": 1})],
                          failed_cases=1)
    assert totals == {"calls": 3.0, "tokens_in": 10.0, "tokens_out": 0.0, "latency_s": 0.0, "cost_usd": 0.5,
                      "faults": 3.0, "failed_cases": 1.0}
    assert usage_totals([Usage(calls=1)])["cost_usd"] is None


def test_probe_training_part_never_holds_mined_samples_and_repeats_on_request(tmp_path: Path, cache_dir: Path) -> None:
    res = _resources(tmp_path, cache_dir, "mining=held-out")
    mined = {s.id for s in res.data.mining_set}
    trained = [s.id for s in res.data.probe_training_set]
    assert mined and trained and not mined & set(trained)
    assert mined | set(trained) == {s.id for s in res.data.splits["probe"]}
    repeated = _resources(tmp_path / "repeated", cache_dir, "mining=held-out", "probe_repeats=3")
    assert sorted(s.id for s in repeated.data.probe_training_set) == sorted(trained * 3)


class _DeadCritic:
    """Failure injection: a critic whose server is gone; counts the cases it was asked."""

    name = "dead"
    where = "teacher 'm' at http://127.0.0.1:9/v1"

    def __init__(self) -> None:
        self.asked = 0

    def critique(self, sample: object, attempt: object) -> Critique:
        self.asked += 1
        raise TeacherError("unreachable", f"{self.where}: gave up after 2 attempts (unreachable: ConnectError)")


def test_a_dead_critic_is_asked_fail_fast_after_times_then_the_judge_stops_the_run(tmp_path: Path, cache_dir: Path) -> None:
    res = _resources(tmp_path, cache_dir, "teacher.fail_fast_after=3")
    dead = _DeadCritic()
    res.teachers.__dict__["critics"] = {"dead": dead}
    attempts = _wrong_attempts(res, 1)
    runtime = Runtime(context=res)
    faults = []
    for attempt in attempts[:6]:
        faults += nodes.critique({"round": 1, "case": attempt.sample_id, "critic": "dead"}, runtime)["teacher_faults"]
    assert dead.asked == 3 and len(faults) == 6
    assert all(f["kind"] == "unreachable" for f in faults) and "not sent" in faults[-1]["message"]
    state = LoopState(round=1, wrong_cases=[a.sample_id for a in attempts[:6]], critique_candidates=[],
                      teacher_faults=faults)
    with pytest.raises(TeacherUnavailable) as caught:
        nodes.judge(state, runtime)
    message = str(caught.value)
    assert "critic 'dead' (teacher 'm' at http://127.0.0.1:9/v1) failed 6 of 6 cases in round 1" in message
    assert f"gaptune resume {res.run.root}" in message


def test_below_the_failed_share_the_judge_keeps_the_answered_cases(res: Resources) -> None:
    attempts = _wrong_attempts(res, 1)
    runtime = Runtime(context=res)
    cases = [a.sample_id for a in attempts[:4]]
    candidates = [c for case in cases[:3] for c in
                  nodes.critique({"round": 1, "case": case, "critic": "reader"}, runtime)["critique_candidates"]]
    fault = {"case": cases[3], "critic": "reader", "kind": "timeout", "message": "slow", "usage": Usage()}
    state = LoopState(round=1, wrong_cases=cases, critique_candidates=candidates, teacher_faults=[fault])
    kept = nodes.judge(state, runtime)["critiques"]
    assert [k["critique"].sample_id for k in kept] == cases[:3]


def _candidate(val: float) -> CandidateResult:
    return CandidateResult(candidate="lora", adapter="rounds/02/lora", val_acc=val, train_size=99, steps=3, final_loss=0.2)


def test_a_candidate_worse_than_the_adapter_in_use_does_not_replace_it(res: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated: list[str | None] = []
    monkeypatch.setattr(res.student, "evaluate", lambda adapter, split, samples=None: evaluated.append(adapter))
    previous = {"round": 1, "val_acc": 0.88, "test_acc": 0.836, "train_size": 50, "gaps": {}, "chosen": "lora",
                "why": "", "candidates": {"lora": 0.88}, "teacher_usage": {}, "diagnosis": {}}
    state = LoopState(round=2, history=[previous], candidates=[_candidate(0.815)], current_adapter="rounds/01/lora",
                      best_val=0.88, stale_rounds=0, used=["p"] * 10)
    update = nodes.choose(state, Runtime(context=res))
    record = update["history"][-1]
    assert update["current_adapter"] == "rounds/01/lora" and evaluated == []
    assert (record["val_acc"], record["test_acc"], record["train_size"], record["chosen"]) == (0.88, 0.836, 50, None)
    assert record["why"].startswith("kept the previous adapter: the best candidate, lora, reached val 0.815 < 0.880")
    assert record["candidates"] == {"lora": 0.815} and update["stale_rounds"] == 1


@pytest.mark.parametrize(("rule", "val", "replaced"), [("if-not-worse", 0.88, True), ("if-not-worse", 0.879, False),
                                                       ("always", 0.5, True)])
def test_the_replace_rule(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch, rule: str, val: float,
                          replaced: bool) -> None:
    res = _resources(tmp_path, cache_dir, f"replace_adapter={rule}")
    monkeypatch.setattr(res.student, "evaluate", lambda adapter, split, samples=None: evaluation_of([]))
    monkeypatch.setattr(res.student, "save_attempts", lambda path, attempts: None)
    previous = {"round": 0, "val_acc": 0.88, "test_acc": 0.8, "train_size": 0, "gaps": {}, "chosen": None,
                "why": "base student", "candidates": {}, "teacher_usage": {}, "diagnosis": {}}
    state = LoopState(round=1, history=[previous], candidates=[_candidate(val)], current_adapter=None, best_val=0.88,
                      stale_rounds=0, used=[])
    update = nodes.choose(state, Runtime(context=res))
    assert (update["current_adapter"] == "rounds/02/lora") is replaced
    assert (update["history"][-1]["chosen"] == "lora") is replaced
