"""A dead teacher is an error: the server check before any work, fail-fast within a round, the round's verdict."""

from __future__ import annotations

import os

import pytest
from teacher_server import FaultServer, free_port, scripted_reply

from gaptune.agents.llm.errors import TeacherError, TeacherUnavailable
from gaptune.agents.llm.server_check import check_server
from gaptune.agents.teacher_config import OpenAIBackend, TeacherConfig, http_teachers
from gaptune.agents.teacher_health import CaseFault, FailFast, check_round


def _backend(base_url: str | None, **extra: object) -> OpenAIBackend:
    return OpenAIBackend(model="m", base_url=base_url, api_key_env="GT_HEALTH_KEY", **extra)  # type: ignore[arg-type]


def test_a_server_that_answers_its_model_list_passes_with_one_request() -> None:
    with FaultServer(scripted_reply) as server:
        check_server(_backend(server.base_url), role="teacher.critics[0]")
        assert server.model_list_requests == 1 and server.requests == []


@pytest.mark.parametrize("status", [404, 405])
def test_a_server_without_a_model_list_is_not_refused(status: int) -> None:
    with FaultServer(scripted_reply, models_status=status) as server:
        check_server(_backend(server.base_url), role="teacher.judge")


def test_nothing_listening_names_the_role_and_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TeacherUnavailable, match=r"^teacher\.critics\[1\]: teacher 'm' at .* is unreachable") as caught:
        check_server(_backend(url), role="teacher.critics[1]")
    assert url in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("status", "words"), [(500, "answered HTTP 500"), (503, "answered HTTP 503"),
                                               (401, "rejected the key in GT_HEALTH_KEY (HTTP 401)")])
def test_a_failing_or_refusing_server_is_named_with_what_it_said(status: int, words: str) -> None:
    with FaultServer(scripted_reply, models_status=status) as server, pytest.raises(TeacherUnavailable) as caught:
        check_server(_backend(server.base_url), role="teacher.critics[0]")
    assert words in str(caught.value) and server.base_url in str(caught.value)


def test_the_openai_api_without_its_key_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GT_HEALTH_KEY", raising=False)
    with pytest.raises(TeacherUnavailable, match="set the environment variable GT_HEALTH_KEY"):
        check_server(_backend(None), role="teacher.critics[0]")
    assert "GT_HEALTH_KEY" not in os.environ


def test_every_http_role_of_a_run_is_listed_with_its_config_key() -> None:
    config = TeacherConfig.model_validate({
        "critics": [{"backend": "reader"}, {"backend": "openai", "model": "a", "base_url": "http://x/v1"}],
        "judge": {"backend": "openai", "model": "j", "base_url": "http://y/v1"},
        "annotator": {"backend": "openai", "model": "n", "base_url": "http://z/v1"},
        "fallback": {"backend": "reference"},
    })
    # the annotator works in `gaptune pool annotate`, which checks it itself
    assert [(role, backend.model) for role, backend in http_teachers(config)] == [
        ("teacher.critics[1]", "a"), ("teacher.judge", "j")]


def test_fail_fast_blocks_a_critic_after_n_failures_in_a_row_within_a_round() -> None:
    gate = FailFast(3)
    down = TeacherError("unreachable", "teacher 'm' at http://h/v1: gave up after 2 attempts")
    gate.record(1, "c", down)
    gate.record(1, "c", down)
    gate.record(1, "c", None)  # a success breaks the streak
    gate.record(1, "c", down)
    gate.record(1, "c", down)
    assert gate.blocked(1, "c") is None
    gate.record(1, "c", down)
    blocked = gate.blocked(1, "c")
    assert blocked is not None and blocked.kind == "unreachable"
    assert "not sent" in str(blocked) and "http://h/v1" in str(blocked)
    assert gate.blocked(1, "other") is None and gate.blocked(2, "c") is None


def _faults(critic: str, n: int) -> list[CaseFault]:
    return [CaseFault(critic=critic, kind="server_error", message=f"http://h/v1: HTTP 500 #{k}") for k in range(n)]


def test_a_critic_failing_every_case_stops_the_run_naming_it_its_server_and_the_last_fault() -> None:
    with pytest.raises(TeacherUnavailable) as caught:
        check_round(_faults("flaky", 2), cases=2, critics={"reader": "in-process", "flaky": "teacher 'm' at http://h/v1"},
                    round_=1, max_failed_share=1.0, resume_hint="continue with `gaptune resume R`")
    message = str(caught.value)
    assert message.startswith("critic 'flaky' (teacher 'm' at http://h/v1) failed 2 of 2 cases in round 1")
    assert "last fault server_error: http://h/v1: HTTP 500 #1" in message and message.endswith("`gaptune resume R`")


def test_the_failed_share_threshold_decides_between_a_counted_skip_and_an_error() -> None:
    check_round(_faults("c", 5), cases=10, critics={"c": "x"}, round_=1, max_failed_share=0.5, resume_hint="")
    with pytest.raises(TeacherUnavailable, match="failed 6 of 10 cases"):
        check_round(_faults("c", 6), cases=10, critics={"c": "x"}, round_=1, max_failed_share=0.5, resume_hint="")
    check_round([], cases=0, critics={"c": "x"}, round_=1, max_failed_share=0.0, resume_hint="")
