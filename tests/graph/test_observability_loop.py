"""Observing real runs: MLflow tracking read back through MLflow's own client (killed and resumed), OpenTelemetry
spans through the SDK's in-memory exporter, and `gaptune compare` on the runs; `gaptune watch` is in test_watch.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from killed_run import kill_at_round_one_selection
from teacher_server import FaultServer, scripted_reply
from typer.testing import CliRunner

from gaptune.cli import app
from gaptune.graph.config import load_config
from gaptune.graph.events import CritiqueEvent, CritiqueFaultEvent, SelectEvent
from gaptune.graph.mlflow_tracking import metric_key
from gaptune.graph.runner import resume, run
from gaptune.graph.trace import read_trace

pytestmark = pytest.mark.slow
SECRET = "sk-span-secret-7777"


@pytest.fixture(scope="module")
def overrides(small_loop: list[str]) -> list[str]:
    return small_loop


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory, overrides: list[str]) -> Path:
    run_dir = tmp_path_factory.mktemp("plain") / "untracked"
    run(load_config(None, overrides), run_dir)
    return run_dir


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory, overrides: list[str]) -> tuple[Path, str, dict[str, Any]]:
    """A run tracked into a local SQLite store, killed mid-round 1 by SIGKILL and resumed."""
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install -e '.[mlflow]'")
    root = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    run_dir = root / "tracked"
    kill_at_round_one_selection(run_dir, [*overrides, f"tracking.mlflow={{uri: '{uri}', experiment: loop-test}}"])
    assert not (run_dir / "metrics.json").exists()
    kept = json.loads((run_dir / "mlflow.json").read_text())
    resume(run_dir)
    return run_dir, uri, kept


def test_a_killed_and_resumed_run_is_one_mlflow_run_whose_metrics_equal_metrics_json(
    tracked_run: tuple[Path, str, dict[str, Any]], tiny_student: Path
) -> None:
    from mlflow.tracking import MlflowClient

    run_dir, uri, kept = tracked_run
    assert json.loads((run_dir / "mlflow.json").read_text()) == kept, "the resumed run kept its MLflow run"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("loop-test")
    assert experiment is not None
    [tracked] = client.search_runs([experiment.experiment_id])
    assert tracked.info.run_id == kept["run_id"] and tracked.info.status == "FINISHED"
    params, tags = tracked.data.params, tracked.data.tags
    assert params["selection"] == "error-driven" and params["trainer.epochs"] == "1" and params["task.probe_size"] == "40"
    assert params["tracking.mlflow.uri"] == uri and json.loads(params["trainer.candidates"]) == ["lora"]
    assert tags["gaptune.task"] == "compare-counts" and tags["gaptune.selection"] == "error-driven"
    assert tags["gaptune.seed"] == "0" and tags["gaptune.student"] == str(tiny_student)

    metrics = json.loads((run_dir / "metrics.json").read_text())
    rounds = metrics["rounds"]
    assert [r["round"] for r in rounds] == [0, 1, 2]

    def history(key: str) -> dict[int, float]:
        points = client.get_metric_history(kept["run_id"], key)
        steps = [int(p.step) for p in points]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice: {sorted(steps)}"
        return {int(p.step): p.value for p in points}

    assert history("val_acc") == {r["round"]: pytest.approx(r["val_acc"]) for r in rounds}
    assert history("test_acc") == {r["round"]: pytest.approx(r["test_acc"]) for r in rounds}
    assert history("train_size") == {r["round"]: r["train_size"] for r in rounds}
    assert history("teacher/calls") == {r["round"]: r["teacher_usage"]["calls"] for r in rounds[1:]}
    for r in rounds[1:]:
        for gap, count in r["gaps"].items():
            assert history(f"gaps/{metric_key(gap)}")[r["round"]] == count  # step texts hold '=': sanitised
    selected = {e.round: len(e.output.items) for e in read_trace(run_dir / "trace.jsonl")
                if isinstance(e, SelectEvent)}
    assert history("selection_size") == selected == {1: 60, 2: 60}

    artifacts = {a.path for a in client.list_artifacts(kept["run_id"])}
    assert {"report.md", "metrics.json", "accuracy.png", "gaps.png", "rounds"} <= artifacts
    for round_ in (1, 2):
        adapter = {a.path for a in client.list_artifacts(kept["run_id"], f"rounds/{round_:02d}/adapter")}
        assert f"rounds/{round_:02d}/adapter/adapter_config.json" in adapter
    report = client.download_artifacts(kept["run_id"], "report.md", str(run_dir.parent))
    assert Path(report).read_text() == (run_dir / "report.md").read_text()


def test_tracking_changes_nothing_in_the_run_and_compare_shows_both(
    tracked_run: tuple[Path, str, dict[str, Any]], plain_run: Path, tmp_path: Path
) -> None:
    run_dir = tracked_run[0]
    tracked = json.loads((run_dir / "metrics.json").read_text())
    plain = json.loads((plain_run / "metrics.json").read_text())
    assert tracked["used"] == plain["used"]
    for got, want in zip(tracked["rounds"], plain["rounds"], strict=True):
        assert got["val_acc"] == pytest.approx(want["val_acc"]) and got["test_acc"] == pytest.approx(want["test_acc"])

    plot = tmp_path / "compare.png"
    result = CliRunner().invoke(app, ["compare", str(plain_run), str(run_dir), "--plot", str(plot)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "untracked" in result.output and "tracked" in result.output
    for r in plain["rounds"]:
        assert f"{r['val_acc']:.3f} / {r['test_acc']:.3f}" in result.output
    assert "counting" in result.output, "the error-driven selection teaches counting"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = CliRunner().invoke(app, ["compare", str(plain_run), str(tmp_path)])
    assert missing.exit_code == 2 and "not a gaptune run directory" in missing.output


@pytest.fixture(scope="module")
def span_exporter() -> Any:
    """The SDK's in-memory exporter on the process's tracer provider (set once per process, as OpenTelemetry allows)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_spans_one_per_node_and_per_teacher_call_with_no_key(
    span_exporter: Any, cache_dir: Path, tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GT_SPAN_KEY", SECRET)
    with FaultServer(scripted_reply, script=["500"]) as server:
        llm = {"backend": "openai", "base_url": server.base_url, "model": "fault-model", "api_key_env": "GT_SPAN_KEY",
               "max_retries": 2,
               "price_in_per_1m": 1.0, "price_out_per_1m": 2.0}
        overrides = [f"cache_dir={cache_dir}", f"student.path={tiny_student}", "task.probe_size=16", "task.val_size=16",
                     "task.test_size=16", "pool.size=3000", "round_budget=30", "budget=30", "max_rounds=1",
                     "trainer.epochs=1", "trainer.batch_size=16", "teacher.method=prompt", "teacher.cache=false",
                     f"teacher.critics=[{json.dumps({'name': 'llm', **llm})}, {{backend: reference}}]",
                     f"teacher.judge={json.dumps(llm)}", "tracing.enabled=true"]
        span_exporter.clear()
        run(load_config(None, overrides), tmp_path / "run")
        requests = len(server.requests)
    spans = span_exporter.get_finished_spans()
    events = read_trace(tmp_path / "run" / "trace.jsonl")
    [root] = [s for s in spans if s.name == "gaptune run"]
    nodes = [s for s in spans if "gaptune.node" in s.attributes]
    assert all(s.parent.span_id == root.context.span_id for s in nodes)
    by_node: dict[str, list[Any]] = {}
    for span in nodes:
        by_node.setdefault(span.name, []).append(span)
    critique_events = {e.event_id for e in events if isinstance(e, CritiqueEvent | CritiqueFaultEvent)}
    assert {name: len(found) for name, found in by_node.items() if name != "retrieve_gap"} == {
        "start": 1, "probe": 1, "critique": len(critique_events), "judge": 1, "classify": 1, "merge_selection": 1,
        "train": 1, "choose": 1, "finish": 1}
    [select] = [e for e in events if isinstance(e, SelectEvent)]
    assert len(by_node["retrieve_gap"]) == len(select.output.allocation)
    assert {tuple(s.attributes["gaptune.event_ids"]) for s in by_node["critique"]} == {(i,) for i in critique_events}
    for span in by_node["critique"]:
        assert span.attributes["gaptune.event_ids"][0] == (f"r1/critique/{span.attributes['gaptune.case']}/"
                                                          f"{span.attributes['gaptune.critic']}")
    assert set(by_node["choose"][0].attributes["gaptune.event_ids"]) == {"r1/choose"}

    calls = [s for s in spans if s.name.startswith("teacher.")]
    assert len(calls) == requests - 1, "one span per teacher call; the one retried request is inside its call"
    assert sum(s.attributes["gaptune.retries"] for s in calls) == 1
    parents = {s.context.span_id: s for s in nodes}
    attempts = {a["sample_id"]: a for a in map(json.loads, (tmp_path / "run" / "rounds" / "01" /
                                                           "probe_attempts.jsonl").read_text().splitlines())}
    for call in calls:
        parent = parents[call.parent.span_id]
        assert parent.name in ("critique", "judge")
        if parent.name == "critique":  # the judge node covers every case of the round
            assert call.attributes["gaptune.case"] == parent.attributes["gaptune.case"]
        assert call.attributes["gen_ai.usage.input_tokens"] == 11 and call.attributes["gen_ai.usage.output_tokens"] == 7
        prompt, reply = call.attributes["gaptune.prompt"], call.attributes["gaptune.reply"]
        if parent.name == "critique":
            attempt = attempts[parent.attributes["gaptune.case"]]
            answer = "(none)" if attempt["answer"] is None else attempt["answer"]
            assert "FIRST step that is wrong" in prompt and f"Student's final answer: {answer}" in prompt
            assert '"missing_skill": "Counting"' in reply
        else:
            assert "Which candidate" in prompt and "candidate 2 names the miscount" in reply
        assert call.attributes["gaptune.cost_usd"] == pytest.approx(11 / 1e6 + 2 * 7 / 1e6)
    assert {parents[c.parent.span_id].name for c in calls} == {"critique", "judge"}

    for span in spans:
        for key, value in {**span.attributes, **span.resource.attributes}.items():
            assert SECRET not in str(value), (span.name, key)
        for event in span.events:
            assert SECRET not in str(dict(event.attributes or {}))
