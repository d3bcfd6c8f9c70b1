"""The trace's explanations on hand-built events, their readable and JSON views, and one real run's trace."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from gaptune.cli import app
from gaptune.data.errors import RunDirectoryError
from gaptune.graph.events import EVENT, ProbeEvent, TraceEvent
from gaptune.graph.explain import explain_case, explain_round, explain_run, explain_sample, rounds_of
from gaptune.graph.metrics import RunMetrics, read_metrics
from gaptune.graph.trace import Trace, archived, read_trace, render_case, render_round, render_run, render_sample


def _event(event_id: str, round_: int, kind: str, agent: str, inputs: dict[str, Any], output: Any,
           model: str = "", **fields: Any) -> TraceEvent:
    return EVENT.validate_python({"event_id": event_id, "kind": kind, "time": 0.0, "round": round_, "agent": agent,
                                  "inputs": inputs, "output": output, "model": model, **fields})


def _critique(case: str, teacher: str, step: int, skill: str, explanation: str) -> dict[str, Any]:
    return {"sample_id": case, "teacher": teacher, "method": f"{teacher}/first-wrong", "wrong_step": step,
            "missing_skill": skill, "explanation": explanation, "usage": {"calls": 0}}


def _item(sample_id: str, gap: str, rank: int) -> dict[str, Any]:
    return {"sample_id": sample_id, "gap": gap, "query": f"{gap}: how to", "method": "bm25", "score": 3.5, "rank": rank}


def _mapping(text: str, label: str) -> dict[str, Any]:
    return {"text": text, "label": label, "how": "contains", "score": 1.0, "occurrences": 1}


REF_C1 = _critique("c1", "reference", 0, "counting objects", "step 1 should read 'count red = 2'")
LLM_C1 = _critique("c1", "llm", 1, "comparing numbers", "step 2 compares [wrongly]")
REF_C2 = _critique("c2", "reference", 0, "counting things", "step 1 should read 'count blue = 3'")

# Two rounds, two critics and a judge; round 1 trains two candidates, round 2 stops after training (killed).
EVENTS = [
    _event("r0/start", 0, "start", "evaluator", {"student": "s"}, {"val_acc": 0.5, "test_acc": 0.45}),
    _event("r1/probe", 1, "probe", "evaluator", {"adapter": None, "samples": 4},
           {"accuracy": 0.5, "wrong_cases": ["c1", "c2"]}),
    _event("r1/critique/c1/reference", 1, "critique", "reference",
           {"case": "c1", "student_output": "count red = 1; answer: no"}, REF_C1),
    _event("r1/critique/c1/llm", 1, "critique", "llm", {"case": "c1", "student_output": "count red = 1; answer: no"},
           LLM_C1, model="gpt-x"),
    _event("r1/critique/c2/reference", 1, "critique", "reference",
           {"case": "c2", "student_output": "count blue = 1; answer: 1"}, REF_C2),
    _event("r1/critique/c2/llm", 1, "critique_fault", "llm", {"case": "c2"},
           {"fault": "timeout", "message": "teacher 'gpt-x' at http://teacher:8000/v1: timed out"}),
    _event("r1/judge/c1", 1, "judge", "judge", {"case": "c1", "candidates": [REF_C1, LLM_C1]},
           {"chosen": 1, "teacher": "llm", "reason": "the comparison is the first wrong step"}, model="gpt-x"),
    _event("r1/classify", 1, "classify", "teacher", {"critiques": ["c1", "c2"]},
           {"gaps": {"comparison": 1, "counting": 1}, "source": "errors",
            "mapping": [_mapping("comparing numbers", "comparison"), _mapping("counting things", "counting"),
                        _mapping("counting objects", "counting")],
            "diagnosis": {"matched": 1, "total": 2}}),
    _event("r1/select", 1, "select", "retriever",
           {"gaps": {"comparison": 1, "counting": 1}, "budget": 4, "excluded": 0,
            "cases_by_gap": {"comparison": ["c1"], "counting": ["c2"]}},
           {"strategy": "error-driven/bm25", "allocation": {"comparison": 2, "counting": 2},
            "shortfall": {"comparison": 1, "counting": 1}, "items": [_item("p1", "comparison", 1), _item("p2", "counting", 1)]},
           node="merge_selection"),
    _event("r1/train/lora", 1, "train", "trainer",
           {"candidate": "lora", "previous": None, "train_size": 6, "pool_samples": 2},
           {"candidate": "lora", "adapter": "a/lora", "val_acc": 0.6, "train_size": 6, "steps": 3, "final_loss": 0.1}),
    _event("r1/train/connector", 1, "train", "trainer",
           {"candidate": "connector", "previous": None, "train_size": 6, "pool_samples": 2},
           {"candidate": "connector", "adapter": "a/connector", "val_acc": 0.55, "train_size": 6, "steps": 3,
            "final_loss": 0.2}),
    _event("r1/choose", 1, "choose", "selector", {"candidates": ["lora", "connector"], "incumbent_val_acc": 0.5},
           {"chosen": "lora", "why": "lora: highest val accuracy (0.600) among lora=0.600, connector=0.550",
            "val_acc": 0.6, "test_acc": 0.5, "stop_reason": None}),
    _event("r2/probe", 2, "probe", "evaluator", {"adapter": "a/lora", "samples": 4},
           {"accuracy": 0.75, "wrong_cases": ["c2"]}),
    _event("r2/critique/c2/reference", 2, "critique", "reference",
           {"case": "c2", "student_output": "count blue = 2; answer: 2"}, REF_C2),
    _event("r2/classify", 2, "classify", "teacher", {"critiques": ["c2"]},
           {"gaps": {"counting": 1}, "source": "errors", "mapping": [_mapping("counting things", "counting")],
            "diagnosis": {"matched": 1, "total": 1}}),
    _event("r2/select", 2, "select", "retriever",
           {"gaps": {"counting": 1}, "budget": 1, "excluded": 2, "cases_by_gap": {"counting": ["c2"]}},
           {"strategy": "error-driven/bm25", "allocation": {"counting": 1}, "shortfall": {},
            "items": [_item("p3", "counting", 1)]}, node="merge_selection"),
    _event("r2/train/lora", 2, "train", "trainer",
           {"candidate": "lora", "previous": "a/lora", "train_size": 7, "pool_samples": 3},
           {"candidate": "lora", "adapter": "b/lora", "val_acc": 0.58, "train_size": 7, "steps": 4, "final_loss": 0.1}),
]


def _text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=120, record=True)
    console.print(renderable)
    return console.export_text()


def test_a_sample_chain_ends_with_its_effect_on_the_round_it_entered() -> None:
    [selection] = explain_sample(EVENTS, "p1")
    assert (selection.round, selection.gap, selection.gap_errors, selection.query, selection.rank) == (
        1, "comparison", 1, "comparison: how to", 1)
    [case] = selection.cases
    assert (case.case, case.teacher, case.wrong_step, case.missing_skill) == ("c1", "llm", 1, "comparing numbers")
    effect = selection.effect
    assert effect is not None
    assert [(c.candidate, c.train_size, c.val_acc, c.chosen) for c in effect.candidates] == [
        ("lora", 6, 0.6, True), ("connector", 6, 0.55, False)]
    assert (effect.round, effect.chosen, effect.val_before, effect.val_after) == (1, "lora", 0.5, 0.6)
    assert effect.also_trained_in == [2] and effect.finished


def test_the_single_answered_critique_is_the_case_behind_a_gap_when_the_other_critic_gave_up() -> None:
    [selection] = explain_sample(EVENTS, "p2")
    assert [(c.case, c.teacher, c.missing_skill) for c in selection.cases] == [("c2", "reference", "counting things")]


def test_a_sample_of_an_unfinished_round_has_candidates_but_no_choice_yet() -> None:
    [selection] = explain_sample(EVENTS, "p3")
    effect = selection.effect
    assert effect is not None
    assert [(c.candidate, c.train_size, c.chosen) for c in effect.candidates] == [("lora", 7, False)]
    assert (effect.chosen, effect.val_before, effect.val_after, effect.also_trained_in) == (None, 0.6, None, [])
    assert not effect.finished
    assert "has not chosen an adapter yet" in _text(render_sample("p3", [selection]))


def test_a_sample_selected_before_any_training_has_no_effect() -> None:
    [selection] = explain_sample(EVENTS[:9], "p1")  # up to r1/select
    assert selection.effect is None
    assert "stopped before round 1 trained an adapter" in _text(render_sample("p1", [selection]))


def test_a_random_selection_has_no_gap_and_no_cases() -> None:
    events = [*EVENTS[:1], _event("r1/select", 1, "select", "retriever",
                                  {"gaps": {}, "budget": 1, "excluded": 0, "cases_by_gap": {}},
                                  {"strategy": "random", "allocation": {}, "shortfall": {},
                                   "items": [{"sample_id": "p9", "gap": "", "query": "", "method": "random",
                                              "score": 0.0, "rank": 1}]}, node="select_data")]
    [selection] = explain_sample(events, "p9")
    assert selection.gap == "" and selection.cases == [] and selection.effect is None
    assert "selected by random (no gap" in _text(render_sample("p9", [selection]))


def test_never_selected_is_an_empty_answer() -> None:
    assert explain_sample(EVENTS, "nope") == []
    assert explain_case(EVENTS, "nope") == []


def test_a_case_shows_every_critic_the_judges_pick_and_each_skills_gap() -> None:
    [round1] = explain_case(EVENTS, "c1")
    assert round1.student_output == "count red = 1; answer: no"
    assert [(c.teacher, c.model, c.wrong_step, c.gap, c.kept) for c in round1.critiques] == [
        ("reference", "", 0, "counting", False), ("llm", "gpt-x", 1, "comparison", True)]
    assert round1.judge is not None and round1.judge.teacher == "llm"
    assert round1.judge.reason == "the comparison is the first wrong step"


def test_a_teacher_fault_is_shown_with_its_message_and_never_kept() -> None:
    rounds = explain_case(EVENTS, "c2")
    assert [r.round for r in rounds] == [1, 2]
    reference, fault = rounds[0].critiques
    assert (reference.teacher, reference.kept, reference.gap) == ("reference", True, "counting")
    assert (fault.teacher, fault.fault, fault.missing_skill, fault.kept) == ("llm", "timeout", None, False)
    assert "http://teacher:8000/v1: timed out" in fault.explanation
    text = _text(render_case("c2", rounds))
    assert "fault: timeout" in text and "round 2" in text


def test_a_round_holds_every_decision_in_order() -> None:
    r = explain_round(EVENTS, 1)
    assert r.probe is not None and (r.probe.samples, r.probe.accuracy, r.probe.wrong_cases) == (4, 0.5, 2)
    assert (r.critiques, r.teacher_faults, r.judged) == (3, 1, 1)
    assert r.gaps == {"comparison": 1, "counting": 1} and r.gap_source == "errors"
    assert r.diagnosis == {"matched": 1, "total": 2}
    assert r.selection is not None
    assert (r.selection.selected, r.selection.budget, r.selection.shortfall) == (2, 4, {"comparison": 1, "counting": 1})
    assert [c.candidate for c in r.candidates] == ["lora", "connector"]
    assert r.val_before == 0.5
    assert r.choice is not None and (r.choice.chosen, r.choice.val_acc, r.choice.test_acc) == ("lora", 0.6, 0.5)
    text = _text(render_round(r))
    for expected in ("2 of 4 wrong (accuracy 0.500)", "3 answered, 1 given up by the teacher, 1 judged",
                     "comparison 1, counting 1 (from errors)", "1 of 2 gaps match", "2 samples by error-driven/bm25",
                     "short: comparison 1, counting 1", "lora (6 samples, val 0.600), kept; connector (6 samples, val 0.550)",
                     "0.500 -> 0.600 (+0.100)", "0.500 (reported only"):
        assert expected in text, expected


def test_round_zero_is_the_base_student_and_an_unfinished_round_says_so() -> None:
    base = explain_round(EVENTS, 0)
    assert base.choice is not None and (base.choice.chosen, base.choice.val_acc) == (None, 0.5)
    assert "val 0.500 · test 0.450" in _text(render_round(base))
    unfinished = explain_round(EVENTS, 2)
    assert unfinished.choice is None and unfinished.val_before == 0.6
    assert "not finished" in _text(render_round(unfinished))


def test_the_run_overview_has_a_row_per_round_and_the_stop_reason() -> None:
    overview = explain_run(EVENTS)
    assert [r.round for r in overview.rounds] == [0, 1, 2] == rounds_of(EVENTS)
    assert overview.stop_reason is None and overview.events == len(EVENTS)
    text = _text(render_run(overview))
    assert "lora (over connector 0.550)" in text and "(unfinished)" in text and "not finished" in text
    finished = RunMetrics(task="t", selection="error-driven", stop_reason="max rounds reached", rounds=[], used=[], data={})
    assert explain_run(EVENTS, finished).stop_reason == "max rounds reached"


def test_data_in_brackets_is_printed_as_written_not_read_as_markup() -> None:
    [round1] = explain_case(EVENTS, "c1")
    assert "step 2 compares [wrongly]" in _text(render_case("c1", [round1]))


def test_json_views_have_stable_keys() -> None:
    [selection] = explain_sample(EVENTS, "p1")
    dumped = selection.model_dump(mode="json")
    assert list(dumped) == ["round", "strategy", "sample_id", "gap", "gap_errors", "query", "method", "score", "rank",
                            "cases", "effect"]
    assert list(dumped["effect"]) == ["round", "candidates", "finished", "chosen", "val_before", "val_after",
                                      "also_trained_in"]
    assert list(dumped["effect"]["candidates"][0]) == ["candidate", "train_size", "val_acc", "chosen"]
    assert list(explain_case(EVENTS, "c1")[0].model_dump()["critiques"][0]) == [
        "teacher", "model", "method", "wrong_step", "missing_skill", "explanation", "gap", "fault", "kept"]


def _run_dir(tmp_path: Path, events: list[TraceEvent]) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("selection: error-driven\n")
    trace = Trace(run_dir / "trace.jsonl")
    for event in events:
        trace.record(event)
    return run_dir


@pytest.mark.parametrize(("args", "expected"), [
    ([], ["decision trace", "lora (over connector 0.550)", "not finished"]),
    (["--round", "1"], ["round 1", "2 of 4 wrong"]),
    (["--sample", "p1"], ["p1 · round 1", "comparing numbers", "effect", "0.500 -> 0.600 (+0.100)"]),
    (["--case", "c1"], ["case c1 · round 1", "judge kept llm"]),
])
def test_every_trace_view_prints_text_and_the_same_content_as_json(tmp_path: Path, args: list[str],
                                                                  expected: list[str]) -> None:
    run_dir = _run_dir(tmp_path, EVENTS)
    text = CliRunner(env={"COLUMNS": "160"}).invoke(app, ["trace", str(run_dir), *args])
    assert text.exit_code == 0, text.output
    assert not text.output.lstrip().startswith(("{", "["))
    for words in expected:
        assert words in text.output, words
    as_json = CliRunner().invoke(app, ["trace", str(run_dir), *args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    events = read_trace(run_dir / "trace.jsonl")
    want: Any
    if not args:
        want = explain_run(events).model_dump(mode="json")
    elif args[0] == "--round":
        want = explain_round(events, 1).model_dump(mode="json")
    elif args[0] == "--sample":
        want = [s.model_dump(mode="json") for s in explain_sample(events, "p1")]
    else:
        want = [r.model_dump(mode="json") for r in explain_case(events, "c1")]
    assert payload == want


@pytest.mark.parametrize(("args", "words"), [
    (["--sample", "p404"], "never selected"),
    (["--case", "c404"], "no critique of case c404"),
    (["--round", "7"], "round 7 is not in this run's trace (rounds: 0, 1, 2)"),
])
def test_a_question_the_trace_cannot_answer_exits_1_with_a_message(tmp_path: Path, args: list[str], words: str) -> None:
    result = CliRunner().invoke(app, ["trace", str(_run_dir(tmp_path, EVENTS)), *args])
    assert result.exit_code == 1 and words in result.stderr and "Traceback" not in result.output


def test_two_questions_at_once_is_a_user_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["trace", str(_run_dir(tmp_path, EVENTS)), "--sample", "p1", "--case", "c1"])
    assert result.exit_code == 2 and "one question at a time" in result.stderr


@pytest.mark.slow
def test_a_real_run_explains_each_trained_sample_down_to_its_effect(
        tmp_path: Path, cache_dir: Path, tiny_student: Path) -> None:
    """A small random-arm run: every selected sample's chain ends in the round's adapter and its val change."""
    from gaptune.graph.config import load_config
    from gaptune.graph.runner import run

    run_dir = tmp_path / "real"
    run(load_config(None, [f"cache_dir={cache_dir}", f"student.path={tiny_student}", "selection=random",
                           "task.probe_size=16", "task.val_size=16", "task.test_size=16", "pool.size=200",
                           "round_budget=12", "budget=12", "max_rounds=1", "trainer.epochs=1",
                           "trainer.batch_size=16"]), run_dir)
    metrics = read_metrics(run_dir / "metrics.json")
    events = read_trace(run_dir / "trace.jsonl")
    assert len(metrics.used) == 12
    for sample_id in metrics.used:
        [selection] = explain_sample(events, sample_id)
        effect = selection.effect
        assert effect is not None and effect.round == 1 and effect.chosen == metrics.rounds[1].chosen
        assert effect.val_before == metrics.rounds[0].val_acc and effect.val_after == metrics.rounds[1].val_acc
        assert [c.train_size for c in effect.candidates] == [metrics.rounds[1].train_size]
    overview = explain_run(events, metrics)
    assert overview.stop_reason == metrics.stop_reason
    assert [r.choice.test_acc for r in overview.rounds if r.choice] == [r.test_acc for r in metrics.rounds]
    for args in ([], ["--round", "1"], ["--sample", metrics.used[0]]):
        result = CliRunner().invoke(app, ["trace", str(run_dir), *args])
        assert result.exit_code == 0, result.output
        result = CliRunner().invoke(app, ["trace", str(run_dir), *args, "--json"])
        assert result.exit_code == 0 and json.loads(result.stdout)
    wrong = next(e for e in events if isinstance(e, ProbeEvent)).output.wrong_cases
    if wrong:
        result = CliRunner().invoke(app, ["trace", str(run_dir), "--case", wrong[0]])
        assert result.exit_code == 0 and "reader" in result.output


def test_a_trace_of_another_version_is_one_error_naming_the_line(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, EVENTS[:2])
    with (run_dir / "trace.jsonl").open("a") as handle:
        handle.write(json.dumps({"event_id": "r1/classify", "round": 1, "node": "classify_gaps", "agent": "teacher",
                                 "inputs": {}, "output": {}}) + "\n")
        handle.write('{"event_id": "r1/pro')  # a torn last line (a kill mid-write) is ignored, not an error
    with pytest.raises(RunDirectoryError, match=r"trace.jsonl:3: not a trace event of this gaptune version"):
        read_trace(run_dir / "trace.jsonl")
    result = CliRunner().invoke(app, ["trace", str(run_dir)])
    assert result.exit_code == 2 and "trace.jsonl:3" in result.stderr and "Traceback" not in result.output


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, EVENTS[:3])
    with (run_dir / "trace.jsonl").open("a") as handle:
        handle.write('{"event_id": "r1/critique/c1/llm", "kind": "crit')
    assert read_trace(run_dir / "trace.jsonl") == EVENTS[:3]


def test_an_archived_trace_reads_and_explains_as_the_plain_one_and_records_no_more(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, EVENTS)
    plain = CliRunner().invoke(app, ["trace", str(run_dir), "--json"])
    assert plain.exit_code == 0 and "\"rounds\"" in plain.output
    trace = run_dir / "trace.jsonl"
    with gzip.open(archived(trace), "wb") as handle:
        handle.write(trace.read_bytes())
    trace.unlink()
    assert read_trace(trace) == EVENTS
    assert CliRunner().invoke(app, ["trace", str(run_dir), "--json"]).output == plain.output
    with pytest.raises(RunDirectoryError, match=r"trace.jsonl.gz: this run's trace is archived; gunzip it"):
        Trace(trace).record(EVENTS[0])
    assert not trace.exists() and read_trace(trace) == EVENTS


def test_skipped_data_rows_are_counted_in_the_overview_and_are_no_round() -> None:
    load = _event("load/task.probe_file", 0, "load", "loader", {"path": "probe.jsonl"},
                  {"skipped": 3, "problems": ["probe.jsonl:2: no image"]})
    overview = explain_run([load, *EVENTS])
    assert overview.rows_skipped == 3 and rounds_of([load, *EVENTS]) == [0, 1, 2]
    assert "3 bad rows or duplicate ids skipped" in _text(render_run(overview))
