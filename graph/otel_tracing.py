"""Agent decisions as OpenTelemetry spans: one per graph node, one per teacher call inside it.

A run is one trace: a root span, a child span per node execution (the case
and critic of a critique branch, the gap of a retrieval branch, the candidate
of a training branch as attributes), and under a node a span per teacher call
(critic, analyst, judge) with its prompt, reply, tokens, latency, retried
faults and cost. Each node span lists the ids of the decision-trace events it
wrote (`gaptune.event_ids`, also as span events), so `gaptune trace` and a
span UI point at the same decisions.

Spans go to the process's tracer provider (an application that configured
OpenTelemetry gets them there), or, with `tracing.otlp_endpoint`, to that
collector over OTLP/gRPC. Secrets never enter a span: prompts carry no client
settings, and the values of every configured `api_key_env` are redacted from
every attribute as a second guard.
"""

from __future__ import annotations

import json
import os
import threading
from typing import TYPE_CHECKING, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, model_validator

from gaptune.data.errors import ConfigError
from gaptune.data.live_events import LiveEvent, TeacherCall, TraceRecorded

if TYPE_CHECKING:  # graph.config reads this module's config classes; Resources reads graph.config
    from gaptune.graph.resources import Resources

REDACTED = "[redacted]"
# Branch payload keys that say which branch a node span is.
_BRANCH_KEYS = {"case": "gaptune.case", "critic": "gaptune.critic", "gap": "gaptune.gap", "quota": "gaptune.quota",
                "candidate": "gaptune.candidate"}


class TracingConfig(BaseModel):
    """Spans of the run's decisions: `enabled` sends them to the process's tracer provider, `otlp_endpoint`
    (e.g. http://localhost:4317) to a collector over OTLP/gRPC, and implies `enabled`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    otlp_endpoint: str | None = None

    @model_validator(mode="after")
    def _endpoint_enables(self) -> TracingConfig:
        if self.otlp_endpoint:
            self.enabled = True
        return self


def secret_values(config: Any) -> list[str]:
    """The values of the environment variables every `api_key_env` in the config names (set ones only)."""
    found: list[str] = []
    if isinstance(config, dict):
        for key, value in config.items():
            if key == "api_key_env" and isinstance(value, str) and os.environ.get(value):
                found.append(os.environ[value])
            else:
                found += secret_values(value)
    elif isinstance(config, list):
        for value in config:
            found += secret_values(value)
    return found


class SpanTracer:
    """The observer that turns node executions and teacher calls into spans."""

    def __init__(self, config: TracingConfig, res: Resources, state: dict[str, Any]) -> None:
        try:
            from opentelemetry import context, trace
        except ImportError as error:
            raise ConfigError("tracing needs OpenTelemetry: pip install 'gaptune[tracing]' "
                              "(or set tracing.enabled=false)") from error
        self._context, self._trace = context, trace
        self._provider: Any = None
        if config.otlp_endpoint:
            self._provider = _otlp_provider(config)
            self.tracer = self._provider.get_tracer("gaptune")
        else:
            self.tracer = trace.get_tracer("gaptune")
        self.secrets = secret_values(res.config.model_dump(mode="json"))
        self.root = self.tracer.start_span("gaptune run", attributes=self._clean({
            "gaptune.run_dir": str(res.run.root), "gaptune.task": res.config.task.name,
            "gaptune.selection": res.config.selection, "gaptune.seed": res.config.seed,
            "gaptune.resumed": bool(state.get("history"))}))
        self._root_context = trace.set_span_in_context(self.root)
        self._open: dict[UUID, tuple[Any, Any]] = {}
        self._event_ids: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def _clean(self, attributes: dict[str, Any]) -> dict[str, Any]:
        """Attributes with every secret value cut out of every string (a second guard: none should be there)."""
        cleaned = {}
        for key, value in attributes.items():
            if isinstance(value, str):
                for secret in self.secrets:
                    value = value.replace(secret, REDACTED)
            cleaned[key] = value
        return cleaned

    def node_started(self, node: str, key: UUID, inputs: dict[str, Any]) -> None:
        attributes: dict[str, Any] = {"gaptune.node": node}
        if "round" in inputs:
            attributes["gaptune.round"] = int(inputs["round"]) + (1 if node == "probe" else 0)
        for field, name in _BRANCH_KEYS.items():
            if isinstance(inputs.get(field), str | int):
                attributes[name] = inputs[field]
        span = self.tracer.start_span(node, context=self._root_context, attributes=self._clean(attributes))
        token = self._context.attach(self._trace.set_span_in_context(span, self._root_context))
        with self._lock:
            self._open[key] = (span, token)

    def _close(self, key: UUID, error: BaseException | None) -> None:
        with self._lock:
            span, token = self._open.pop(key, (None, None))
        if span is None:
            return
        self._context.detach(token)
        with self._lock:
            ids = self._event_ids.pop(span.get_span_context().span_id, [])
        if ids:
            span.set_attribute("gaptune.event_ids", ids)
        if error is not None:
            span.record_exception(error)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__))
        span.end()

    def node_finished(self, node: str, key: UUID, update: dict[str, Any]) -> None:
        self._close(key, None)

    def node_failed(self, node: str, key: UUID, error: BaseException) -> None:
        self._close(key, error)

    def live_event(self, event: LiveEvent) -> None:
        current = self._trace.get_current_span()
        if isinstance(event, TraceRecorded):
            current.add_event("gaptune.trace_event", {"gaptune.event_id": event.event_id})
            with self._lock:
                self._event_ids.setdefault(current.get_span_context().span_id, []).append(event.event_id)
        elif isinstance(event, TeacherCall):
            self._teacher_span(event, current)

    def _teacher_span(self, call: TeacherCall, parent: Any) -> None:
        usage = call.usage
        inherited = {k: v for k, v in (getattr(parent, "attributes", None) or {}).items()
                     if k in ("gaptune.round", "gaptune.case", "gaptune.critic")}
        attributes = {
            **inherited,
            "gaptune.backend": call.backend, "gen_ai.request.model": call.model, "gen_ai.operation.name": call.operation,
            "gaptune.prompt": json.dumps(call.messages), "gaptune.reply": call.reply,
            "gen_ai.usage.input_tokens": usage.tokens_in, "gen_ai.usage.output_tokens": usage.tokens_out,
            "gaptune.latency_s": (call.ended_ns - call.started_ns) / 1e9, "gaptune.cached": usage.cached_calls > 0,
            "gaptune.retries": sum(usage.faults.values()), "gaptune.faults": json.dumps(usage.faults),
        }
        if usage.cost_usd is not None:
            attributes["gaptune.cost_usd"] = usage.cost_usd
        if call.fault is not None:
            attributes["gaptune.fault"] = call.fault
        context = self._trace.set_span_in_context(parent) if parent.get_span_context().is_valid else self._root_context
        span = self.tracer.start_span(f"teacher.{call.operation}", context=context, start_time=call.started_ns,
                                      attributes=self._clean(attributes))
        if call.fault is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, call.fault))
        span.end(end_time=call.ended_ns)

    def run_ended(self, state: dict[str, Any] | None, error: BaseException | None) -> None:
        if error is not None:
            self.root.record_exception(error)
            self.root.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(error).__name__))
        elif state is not None and state.get("stop_reason"):
            self.root.set_attribute("gaptune.stop_reason", str(state["stop_reason"]))
        self.root.end()
        if self._provider is not None:
            self._provider.shutdown()  # flushes the batch to the collector


def _otlp_provider(config: TracingConfig) -> Any:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as error:
        raise ConfigError("tracing.otlp_endpoint needs the OpenTelemetry SDK and OTLP exporter: "
                          "pip install 'gaptune[tracing]'") from error
    endpoint = config.otlp_endpoint or ""
    provider = TracerProvider(resource=Resource.create({"service.name": "gaptune"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                                    insecure=endpoint.startswith("http://"))))
    return provider
