"""Every teacher call is announced to the run's listener: prompt, reply, usage, retried faults, and never the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from teacher_server import FaultServer

from gaptune.agents.llm.backends import build_backend
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.teacher_config import OpenAIBackend
from gaptune.data.live_events import LiveEvent, TeacherCall, listening

SECRET = "sk-announce-secret-42"


def _backend(server: FaultServer, tmp_path: Path, *, cache: bool, retries: int = 2) -> object:
    config = OpenAIBackend(model="fault-model", base_url=server.base_url, api_key_env="GT_ANNOUNCE_KEY",
                           timeout_s=5.0, max_retries=retries, price_in_per_1m=1.0, price_out_per_1m=2.0)
    return build_backend(config, cache_dir=tmp_path, cache=cache)


def test_a_call_is_announced_with_prompt_reply_usage_and_retried_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_ANNOUNCE_KEY", SECRET)
    heard: list[LiveEvent] = []
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5000}}
    messages = [{"role": "user", "content": [{"type": "text", "text": "Which step is wrong?"}, image]}]
    with FaultServer(lambda body: "step 2 miscounts", script=["500"]) as server, listening(heard.append):
        completion = _backend(server, tmp_path, cache=False).complete(messages)  # type: ignore[attr-defined]
    assert completion.text == "step 2 miscounts"
    assert server.authorizations == [f"Bearer {SECRET}"] * 2, "the key did go to the server, once per attempt"
    [call] = heard
    assert isinstance(call, TeacherCall)
    assert call.reply == "step 2 miscounts" and call.operation == "complete" and call.model == "fault-model"
    assert call.messages[0]["content"][0] == {"type": "text", "text": "Which step is wrong?"}
    assert call.messages[0]["content"][1]["value"] == "[image]", "no base64 image in the announced prompt"
    assert call.usage.tokens_in == 11 and call.usage.tokens_out == 7 and call.usage.faults == {"server_error": 1}
    assert call.usage.cost_usd == pytest.approx(11 / 1e6 + 2 * 7 / 1e6)
    assert call.ended_ns > call.started_ns and call.fault is None
    assert SECRET not in repr(call)


def test_a_cached_reply_is_announced_as_cached_and_a_failed_call_with_its_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_ANNOUNCE_KEY", SECRET)
    heard: list[LiveEvent] = []
    messages = [{"role": "user", "content": "hello"}]
    with FaultServer(lambda body: "hi", script=["ok", "500", "500"]) as server, listening(heard.append):
        cached = _backend(server, tmp_path, cache=True, retries=1)
        cached.complete(messages)  # type: ignore[attr-defined]
        cached.complete(messages)  # type: ignore[attr-defined]
        with pytest.raises(TeacherError):
            _backend(server, tmp_path, cache=False, retries=1).complete(messages)  # type: ignore[attr-defined]
    first, again, failed = heard
    assert isinstance(first, TeacherCall) and isinstance(again, TeacherCall) and isinstance(failed, TeacherCall)
    assert first.usage.calls == 1 and first.usage.cached_calls == 0
    assert again.usage.calls == 0 and again.usage.cached_calls == 1 and again.reply == "hi"
    assert failed.fault == "server_error" and failed.reply == "" and failed.usage.faults == {"server_error": 2}


def test_nothing_is_announced_when_nobody_listens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GT_ANNOUNCE_KEY", SECRET)
    heard: list[LiveEvent] = []
    with FaultServer(lambda body: "hi") as server:
        backend = _backend(server, tmp_path, cache=False)
        with listening(heard.append):
            pass
        assert backend.complete([{"role": "user", "content": "x"}]).text == "hi"  # type: ignore[attr-defined]
    assert heard == []
