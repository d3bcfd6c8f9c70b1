"""LLM teachers against a real, fault-injecting OpenAI-compatible HTTP server.

Every fault the issue names (garbage, empty, timeout, dropped, 429, 500, 503,
unparseable content) must be retried and counted, and a case that cannot be
saved must end as a `TeacherError` the graph can count — never as a crashed
run. Retries are the openai client's; the counting is ours.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from teacher_server import FaultServer, scripted_reply

from gaptune.agents.annotator import CHARS_PER_TOKEN, annotate_pool, annotation_prompt, estimate_annotation
from gaptune.agents.critics import build_critics
from gaptune.agents.judge import build_judge
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import request_limiter
from gaptune.agents.teacher_config import TeacherConfig
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique
from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split

SECRET = "sk-test-very-secret-key-123"


@pytest.fixture()
def case() -> tuple[Sample, Attempt]:
    sample = task_split("compare-counts", "probe", size=1)[0]
    attempt = Attempt(sample_id=sample.id, output="count yellow = 2; count blue = 1; 2 more than 1 = yes; answer: yes",
                      steps=["count yellow = 2", "count blue = 1", "2 more than 1 = yes"], answer="yes", correct=False)
    return sample, attempt


def teacher(server: FaultServer, **overrides: Any) -> TeacherConfig:
    block = {"backend": "openai", "model": "fault-model", "base_url": server.base_url, "api_key_env": "GT_TEST_KEY",
             "timeout_s": 1.0, "max_retries": 3, "price_in_per_1m": 1.0, "price_out_per_1m": 2.0}
    return TeacherConfig.model_validate({"critics": [block], "method": "prompt", "cache": False, **overrides})


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "kind", "billed"), [
    ("garbage", "malformed", 1), ("empty", "malformed", 1), ("timeout", "timeout", 1), ("dropped", "unreachable", 1),
    ("429", "rate_limit", 1), ("500", "server_error", 1), ("503", "server_error", 1),
    ("bad-content", "malformed", 3),  # an unparseable reply is a real, billed call; the repair asks again
])
def test_each_fault_is_retried_and_counted(fault: str, kind: str, billed: int, case, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_TEST_KEY", SECRET)
    sample, attempt = case
    with FaultServer(scripted_reply, script=[fault, fault]) as server:
        critic = build_critics(teacher(server), cache_dir=tmp_path)[0]
        critique = critic.critique(sample, attempt)
    assert server.behaviours == [fault, fault, "ok"]
    assert critique.wrong_step == 0 and critique.missing_skill == "counting"
    assert critique.usage.faults == {kind: 2}
    assert critique.usage.calls == billed
    assert critique.usage.tokens_in == 11 * billed and critique.usage.tokens_out == 7 * billed
    assert critique.usage.cost_usd == pytest.approx(billed * (11 * 1.0 + 7 * 2.0) / 1e6)
    assert critique.usage.model == "fault-model"
    assert server.authorizations[-1] == f"Bearer {SECRET}"  # the key reaches the server, and only the server


@pytest.mark.slow
def test_a_teacher_that_never_recovers_raises_teacher_error_without_the_key(case, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_TEST_KEY", SECRET)
    sample, attempt = case
    with FaultServer(scripted_reply, script=["500"] * 10) as server:
        critic = build_critics(teacher(server), cache_dir=tmp_path)[0]
        with pytest.raises(TeacherError) as raised:
            critic.critique(sample, attempt)
    assert raised.value.kind == "server_error"
    assert raised.value.usage.faults == {"server_error": 4}
    assert server.base_url in str(raised.value) and SECRET not in str(raised.value)
    assert SECRET not in raised.value.usage.model_dump_json()


def test_unreachable_server_is_a_teacher_error(case, tmp_path: Path) -> None:
    sample, attempt = case
    config = TeacherConfig.model_validate({"critics": [{
        "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "max_retries": 1,
        "timeout_s": 1.0}], "method": "prompt", "cache": False})
    with pytest.raises(TeacherError) as raised:
        build_critics(config, cache_dir=tmp_path)[0].critique(sample, attempt)
    assert raised.value.kind == "unreachable" and "127.0.0.1:9" in str(raised.value)


@pytest.mark.slow
def test_fallback_teacher_takes_over_and_the_failed_faults_stay_counted(case, tmp_path: Path) -> None:
    sample, attempt = case
    with FaultServer(scripted_reply, script=["429"] * 10) as server:
        config = teacher(server, fallback={"backend": "reference"})
        critique = build_critics(config, cache_dir=tmp_path)[0].critique(sample, attempt)
    assert critique.teacher == "reference (fallback for openai:fault-model)"
    assert critique.wrong_step == 0 and critique.missing_skill == "counting"  # the gold rationale's verdict
    assert critique.usage.faults == {"rate_limit": 4}


@pytest.mark.slow
def test_skill_analyst_names_the_skill_and_answers_repair(case, tmp_path: Path) -> None:
    sample, attempt = case
    with FaultServer(scripted_reply) as server:
        analyst = {"backend": "openai", "model": "analyst", "base_url": server.base_url}
        critic = build_critics(teacher(server, skill_analyst=analyst), cache_dir=tmp_path)[0]
        critique = critic.critique(sample, attempt)
    assert critique.wrong_step == 0 and critique.missing_skill == "spatial relation"
    assert critique.usage.calls == 2


@pytest.mark.slow
def test_response_cache_means_a_repeated_run_does_not_pay_twice(case, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_TEST_KEY", SECRET)
    sample, attempt = case
    with FaultServer(scripted_reply) as server:
        config = teacher(server, cache=True)
        first = build_critics(config, cache_dir=tmp_path)[0].critique(sample, attempt)
        second = build_critics(config, cache_dir=tmp_path)[0].critique(sample, attempt)
    assert len(server.requests) == 1
    assert (first.wrong_step, first.missing_skill) == (second.wrong_step, second.missing_skill)
    assert second.usage.calls == 0 and second.usage.cached_calls == 1
    for path in tmp_path.rglob("*.json"):
        assert SECRET not in path.read_text() and server.base_url not in path.read_text()


def test_critic_names_are_unique(tmp_path: Path) -> None:
    block = {"backend": "openai", "model": "org/m", "base_url": "http://127.0.0.1:9/v1"}
    config = TeacherConfig.model_validate({"critics": [block, block, {"backend": "reference"}]})
    assert [c.name for c in build_critics(config, cache_dir=tmp_path)] == ["openai:m", "openai:m#2", "reference"]


def _critique(step: int | None, skill: str, teacher_name: str) -> Critique:
    return Critique(sample_id="s", teacher=teacher_name, method="prompt", wrong_step=step, missing_skill=skill)


def test_agreement_voting_majority_and_ties(case, tmp_path: Path) -> None:
    sample, attempt = case
    judge = build_judge(TeacherConfig(), cache_dir=tmp_path)
    majority = judge.pick(sample, attempt, [_critique(1, "colour", "a"), _critique(0, "Counting", "b"),
                                            _critique(0, "counting", "c")])
    assert majority.index == 1 and "2 of 3" in majority.reason
    tie = judge.pick(sample, attempt, [_critique(2, "comparison", "a"), _critique(0, "counting", "b")])
    assert tie.index == 0 and "tie" in tie.reason


@pytest.mark.slow
def test_llm_judge_picks_and_falls_back_to_voting_when_it_fails(case, tmp_path: Path) -> None:
    sample, attempt = case
    candidates = [_critique(2, "comparison", "a"), _critique(0, "counting", "b"), _critique(2, "comparison", "c")]
    with FaultServer(scripted_reply) as server:
        judge_block = {"backend": "openai", "model": "judge", "base_url": server.base_url}
        decision = build_judge(teacher(server, judge=judge_block), cache_dir=tmp_path).pick(sample, attempt, candidates)
    assert decision.index == 1 and decision.reason == "candidate 2 names the miscount"
    assert decision.usage.calls == 1
    with FaultServer(scripted_reply, script=["garbage"] * 10) as server:
        judge_block = {"backend": "openai", "model": "judge", "base_url": server.base_url,
                       "max_retries": 1}
        decision = build_judge(teacher(server, judge=judge_block), cache_dir=tmp_path).pick(sample, attempt, candidates)
    assert decision.index == 0 and "failed (malformed)" in decision.reason and "2 of 3" in decision.reason
    assert decision.usage.faults == {"malformed": 2}


def _bare(index: int, question: str) -> Sample:
    return Sample(id=f"p{index}", question=question, answer="2", images=[])


@pytest.mark.slow
def test_pool_annotation_concurrent_cached_resumable_and_counts_failures(tmp_path: Path) -> None:
    bare = [_bare(i, f"How many cats are in picture {i}?") for i in range(6)]
    labelled = Sample(id="has", question="q", answer="a", skills=["colour"])
    with FaultServer(scripted_reply, script=["ok", "ok", "ok"]) as server:
        block = {"backend": "openai", "model": "annot", "base_url": server.base_url}
        config = teacher(server, annotator=block, max_concurrency=3)
        # A first, interrupted pass annotated only three samples.
        partial = annotate_pool(bare[:3], config, cache_dir=tmp_path, progress=False)
        assert partial.annotated == 3 and len(server.requests) == 3
        priced = teacher(server, annotator={**block, "price_in_per_1m": 2.5, "price_out_per_1m": 10.0})
        estimate = estimate_annotation([*bare, labelled], priced, cache_dir=tmp_path)
        assert len(server.requests) == 3, "an estimate makes no call"
        assert (estimate.samples, estimate.passed_through, estimate.cached, estimate.calls) == (7, 1, 3, 3)
        assert estimate.tokens_in == sum(len(annotation_prompt(s)) // CHARS_PER_TOKEN for s in bare[3:])
        assert estimate.tokens_out_max == 3 * 512 > estimate.tokens_out > 0
        assert estimate.cost_usd == pytest.approx((estimate.tokens_in * 2.5 + estimate.tokens_out * 10.0) / 1e6)
        assert estimate_annotation(bare, config, cache_dir=tmp_path).cost_usd is None, "no prices, no dollars"
        server.script = ["ok", "ok"] + ["500"] * 4  # the last sample's teacher keeps failing
        report = annotate_pool([*bare, labelled], config, cache_dir=tmp_path, progress=False)
    assert report.cached == 3 and report.annotated == 2 and report.passed_through == 1
    assert report.failed == {"server_error": 1} and len(report.failed_ids) == 1
    assert [s.id for s in report.samples] == [s.id for s in [*bare, labelled] if s.id not in report.failed_ids]
    assert all(s.skills == ["counting", "comparison"] for s in report.samples if s.id != "has")
    assert report.usage.faults == {"server_error": 4}


def test_pool_annotation_without_annotator_uses_gold_rationale(tmp_path: Path) -> None:
    pool = [s.model_copy(update={"skills": []}) for s in task_split("compare-counts", "probe", size=2)]
    report = annotate_pool([*pool, _bare(9, "How many?")], TeacherConfig(), cache_dir=tmp_path, progress=False)
    assert [s.skills for s in report.samples] == [["comparison", "counting"]] * 2
    assert report.failed == {"malformed": 1} and report.failed_ids == ["p9"]


@pytest.mark.slow
@pytest.mark.parametrize("vision", [True, False])
def test_vision_teachers_get_the_images_and_text_teachers_do_not(vision: bool, case, tmp_path: Path) -> None:
    sample, attempt = case
    with FaultServer(scripted_reply) as server:
        config = teacher(server)
        config.critics[0] = config.critics[0].model_copy(update={"vision": vision})
        build_critics(config, cache_dir=tmp_path)[0].critique(sample, attempt)
    content = server.requests[0]["messages"][-1]["content"]
    if vision:
        kinds = [part["type"] for part in content]
        assert kinds == ["image_url", "text"]
        assert content[0]["image_url"]["url"].startswith("data:image/png;base64,")
        assert "Correct answer: no" in content[1]["text"]
    else:
        assert isinstance(content, str) and "Student's reasoning steps:\n1. count yellow = 2" in content


@pytest.mark.slow
def test_a_failing_later_stage_keeps_the_cost_of_earlier_ones(case, tmp_path: Path) -> None:
    sample, attempt = case
    with FaultServer(scripted_reply) as critic_server, FaultServer(scripted_reply, script=["bad-content"] * 3) as bad:
        analyst = {"backend": "openai", "model": "analyst", "base_url": bad.base_url}
        critic = build_critics(teacher(critic_server, skill_analyst=analyst), cache_dir=tmp_path)[0]
        with pytest.raises(TeacherError) as raised:
            critic.critique(sample, attempt)
    assert raised.value.kind == "malformed" and "raw replies: Sure! I think it is fine." in str(raised.value)
    assert raised.value.usage.calls == 4  # the critic's call and the analyst's three
    assert raised.value.usage.faults == {"malformed": 3}


@pytest.mark.slow
def test_the_servers_retry_after_is_honoured(case, tmp_path: Path) -> None:
    sample, attempt = case
    with FaultServer(scripted_reply, script=["429"], retry_after_ms=400) as server:
        critique = build_critics(teacher(server), cache_dir=tmp_path)[0].critique(sample, attempt)
    assert server.behaviours == ["429", "ok"] and critique.usage.faults == {"rate_limit": 1}
    assert server.arrivals[1] - server.arrivals[0] >= 0.4


def _outcome(critic, sample: Sample, attempt: Attempt) -> Critique | TeacherError:
    try:
        return critic.critique(sample, attempt)
    except TeacherError as error:
        return error


# What each injected fault is counted as.
FAULT_KINDS = {"429": "rate_limit", "500": "server_error", "503": "server_error", "garbage": "malformed",
               "empty": "malformed", "dropped": "unreachable"}


@pytest.mark.slow
def test_a_server_failing_40_percent_of_requests_every_case_completes_and_every_fault_is_counted(
    case, tmp_path: Path
) -> None:
    """429/500/503, bad JSON, empty bodies and dropped connections on 40% of requests, 8 critiques at once."""
    sample, attempt = case
    rng = random.Random(10)
    script = [rng.choice(list(FAULT_KINDS)) if rng.random() < 0.4 else "ok" for _ in range(400)]
    with FaultServer(scripted_reply, script=script) as server:
        config = teacher(server, max_concurrency=8)
        config.critics[0] = config.critics[0].model_copy(update={"max_retries": 8})
        critic = build_critics(config, cache_dir=tmp_path)[0]
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(lambda _: _outcome(critic, sample, attempt), range(16)))
        served = list(server.behaviours)
    assert all(isinstance(o, Critique) and (o.wrong_step, o.missing_skill) == (0, "counting") for o in outcomes)
    injected = Counter(FAULT_KINDS[b] for b in served if b in FAULT_KINDS)
    assert sum(injected.values()) >= 8  # the mix really was faulty
    counted: Counter[str] = Counter()
    for outcome in outcomes:
        counted.update(outcome.usage.faults)
    assert counted == injected  # every recovered fault, per critique, none lost and none invented
    assert sum(o.usage.calls for o in outcomes) == served.count("ok") == 16


@pytest.mark.slow
@pytest.mark.parametrize("limit", [2, 8])
def test_one_limit_on_requests_in_flight_across_every_role(limit: int, case, tmp_path: Path) -> None:
    """Two critics (one falling back), the skill analyst, the judge and the annotator share `max_concurrency`."""
    sample, attempt = case
    candidates = [_critique(2, "comparison", "a"), _critique(0, "counting", "b")]
    with FaultServer(scripted_reply, latency_s=0.05) as server:
        block = {"backend": "openai", "model": "m", "base_url": server.base_url}
        dead = {"backend": "openai", "model": "gone", "base_url": "http://127.0.0.1:9/v1", "max_retries": 0}
        config = TeacherConfig.model_validate({
            "critics": [block, dead], "skill_analyst": block, "judge": block, "annotator": block,
            "fallback": block, "method": "prompt", "cache": False, "max_concurrency": limit,
        })
        limiter = request_limiter(config.max_concurrency)
        critics = build_critics(config, cache_dir=tmp_path, limiter=limiter)
        judge = build_judge(config, cache_dir=tmp_path, limiter=limiter)
        pool_samples = [_bare(i, f"How many cats are in picture {i}?") for i in range(8)]
        jobs: list[Callable[[], object]] = [
            *[lambda c=critic: c.critique(sample, attempt) for critic in critics for _ in range(4)],
            *[lambda: judge.pick(sample, attempt, candidates) for _ in range(4)],
            lambda: annotate_pool(pool_samples, config, cache_dir=tmp_path, progress=False, limiter=limiter),
        ]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            results = [future.result() for future in [pool.submit(job) for job in jobs]]
    assert all(not isinstance(r, TeacherError) for r in results)
    assert len(server.requests) == 4 * 2 + 4 * 2 + 4 + 8  # critic+analyst twice (once as fallback), judge, annotator
    if limit == 2:
        assert server.max_in_flight == 2  # reached, never passed
    else:
        assert 2 < server.max_in_flight <= 8  # the server does see concurrency when the limit allows it


def test_voting_counts_on_the_pools_canonical_skills(case, tmp_path: Path) -> None:
    """Two critics naming the same skill in different words agree once mapped onto the pool's vocabulary."""
    sample, attempt = case
    vocabulary = {"counting": "counting the objects of a colour or shape", "comparison": "comparing two counts",
                  "colour": "naming an object's colour"}
    candidates = [_critique(2, "comparison", "a"), _critique(0, "can't count objects", "b"),
                  _critique(0, "Counting", "c")]
    canonical = build_judge(TeacherConfig(), cache_dir=tmp_path, vocabulary=vocabulary).pick(sample, attempt, candidates)
    assert canonical.index == 1 and canonical.reason == "2 of 3 critics agree on step 1, skill 'counting'"
    plain = build_judge(TeacherConfig(), cache_dir=tmp_path).pick(sample, attempt, candidates)
    assert plain.index == 0 and "tie" in plain.reason  # without the vocabulary the wording splits the vote
