"""Pool annotation: the annotator teacher writes the skills each pool sample teaches, once.

Every result is stored under the sample's content hash as soon as it is known,
so an interrupted annotation resumes where it stopped and a repeated one costs
nothing. Requests run concurrently (bounded by `teacher.max_concurrency`, the
run's one limit on teacher requests in flight), here or over a Ray cluster
(`engine`, see gaptune.data.engine).
Samples that already carry skills pass through untouched; with no annotator
model configured, skills come from the gold rationale steps. A sample the
teacher cannot annotate is skipped and counted, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from gaptune.agents.llm.backends import ChatBackend, build_backend
from gaptune.agents.llm.case_prompt import user_message
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.llm.response_cache import ResponseCache
from gaptune.agents.llm.structured_output import schema_instructions, structured_call
from gaptune.agents.teacher_config import HFBackend, OpenAIBackend, ReferenceBackend, TeacherConfig
from gaptune.data.engine import Engine, LocalEngine, Row
from gaptune.data.records import Usage
from gaptune.data.sample import Sample
from gaptune.tools.annotate import AnnotateSampleArgs, annotate_sample


class AnnotationReport(BaseModel):
    """The annotated samples (input order, failures left out) and what it took."""

    model_config = ConfigDict(extra="forbid")

    samples: list[Sample]
    annotated: int = 0
    cached: int = 0
    passed_through: int = 0
    failed: dict[str, int] = Field(default_factory=dict)
    failed_ids: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)


def content_hash(sample: Sample, annotator: str) -> str:
    """What an annotation depends on: the sample's content (not its id) and who annotates."""
    content = {
        "annotator": annotator, "question": sample.question, "answer": sample.answer, "choices": sample.choices,
        "images": sample.images, "steps": [step.text for step in sample.steps or []],
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


EXAMPLE_SKILLS = ["counting", "comparison"]


def annotation_prompt(sample: Sample) -> str:
    """What the annotator is asked about one sample (its images go beside it when the backend has vision)."""
    rationale = "; ".join(step.text for step in sample.steps or [])
    return (
        "You label training data. Name the skills a model practises by answering this question "
        "about the image(s).\n\n"
        f"Question: {sample.question_text()}\nAnswer: {sample.answer}\n"
        + (f"Worked solution: {rationale}\n" if rationale else "")
        + "\nUse short reusable labels such as counting, colour, spatial relation, text reading, "
          "chart reading, comparison.\n"
        + schema_instructions(AnnotateSampleArgs, {"sample_id": sample.id, "skills": EXAMPLE_SKILLS})
    )


class _LLMAnnotator:
    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend

    def annotate(self, sample: Sample) -> tuple[list[str], Usage]:
        messages = [user_message(annotation_prompt(sample), sample, vision=self.backend.vision)]
        args, usage = structured_call(self.backend, messages, AnnotateSampleArgs)
        recorded = annotate_sample.invoke({"sample_id": sample.id, "skills": args.skills})
        return list(recorded["skills"]), usage


CHARS_PER_TOKEN = 4  # OpenAI's rule of thumb for English; the estimate needs no tokenizer download
IMAGE_TOKENS = 85  # what one low-detail image costs a GPT-4o-class model; high detail costs more


class AnnotationEstimate(BaseModel):
    """What annotating a pool would take, known before any call: calls, tokens and, with prices, dollars."""

    model_config = ConfigDict(extra="forbid")

    annotator: str
    samples: int
    passed_through: int  # already carry skills
    cached: int  # annotated before by this annotator
    calls: int  # one per remaining sample (retries and repairs come on top)
    tokens_in: int
    tokens_out: int  # the expected reply, the example's length
    tokens_out_max: int  # every reply at the backend's token limit
    cost_usd: float | None  # None when the annotator has no prices (teacher.annotator.price_in_per_1m, ...)
    cost_usd_max: float | None


def estimate_annotation(samples: Iterable[Sample], config: TeacherConfig, *, cache_dir: Path) -> AnnotationEstimate:
    """Count the calls and tokens `annotate_pool` would spend on `samples`, making none."""
    spec = config.annotator or ReferenceBackend()
    identity = _identity(spec)
    store = ResponseCache(Path(cache_dir) / "annotations")
    vision = isinstance(spec, OpenAIBackend) and spec.vision
    limit = spec.max_tokens if isinstance(spec, OpenAIBackend) else spec.max_new_tokens if isinstance(
        spec, HFBackend) else 0
    reply = len(AnnotateSampleArgs(sample_id="x", skills=EXAMPLE_SKILLS).model_dump_json()) // CHARS_PER_TOKEN
    total = passed = cached = calls = tokens_in = 0
    for sample in samples:
        total += 1
        if sample.skills:
            passed += 1
        elif store.get(content_hash(sample, identity)) is not None:
            cached += 1
        elif not isinstance(spec, ReferenceBackend):
            calls += 1
            tokens_in += len(annotation_prompt(sample)) // CHARS_PER_TOKEN + (
                IMAGE_TOKENS * len(sample.images) if vision else 0)
    price_in, price_out = (None, None) if isinstance(spec, ReferenceBackend) else (
        spec.price_in_per_1m, spec.price_out_per_1m)
    priced = price_in is not None or price_out is not None

    def cost(out: int) -> float | None:
        return (tokens_in * (price_in or 0.0) + out * (price_out or 0.0)) / 1e6 if priced else None

    return AnnotationEstimate(annotator=identity, samples=total, passed_through=passed, cached=cached, calls=calls,
                              tokens_in=tokens_in, tokens_out=calls * reply, tokens_out_max=calls * limit,
                              cost_usd=cost(calls * reply), cost_usd_max=cost(calls * limit))


def _identity(spec: ReferenceBackend | OpenAIBackend | HFBackend) -> str:
    """Who annotates, as the cache keys it: `reference`, or `backend:model`."""
    if isinstance(spec, ReferenceBackend):
        return "reference"
    return f"{spec.backend}:{spec.model}"


def _from_rationale(sample: Sample) -> list[str]:
    return sorted({step.skill for step in sample.steps or []})


class _Outcome(BaseModel):
    """What became of one sample: it carried skills (`passed`), was annotated before (`cached`), now (`annotated`),
    or not (`failed`, with the teacher's error kind)."""

    model_config = ConfigDict(extra="forbid")

    how: Literal["passed", "cached", "annotated", "failed"]
    skills: list[str] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    error: str = ""


class AnnotateWorker:
    """Samples to skills (the engine's worker): rows {sample, known} -> {outcome}, as JSON; a row whose outcome is
    `known` (passed through or cached, decided by the driver) passes untouched. Requests run concurrently, at
    most `teacher.max_concurrency` in flight per worker (all workers share one `limiter` in this process)."""

    def __init__(self, config: TeacherConfig, cache_dir: str, limiter: Limiter | None = None) -> None:
        spec = config.annotator or ReferenceBackend()
        self.llm = None if isinstance(spec, ReferenceBackend) else _LLMAnnotator(build_backend(
            spec, cache_dir=Path(cache_dir), cache=config.cache,
            limiter=limiter or request_limiter(config.max_concurrency)))
        self.concurrency = config.max_concurrency

    def __call__(self, rows: list[Row]) -> list[Row]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [{"outcome": outcome.model_dump_json()} for outcome in pool.map(self._one, rows)]

    def _one(self, row: Row) -> _Outcome:
        if row["known"]:
            return _Outcome.model_validate_json(row["known"])
        sample = Sample.model_validate_json(row["sample"])
        try:
            if self.llm is None:
                skills, usage = _from_rationale(sample), Usage()
                if not skills:
                    raise TeacherError("malformed", f"sample {sample.id!r} has no skills, no rationale steps and "
                                                    "no annotator model: configure teacher.annotator")
            else:
                skills, usage = self.llm.annotate(sample)
        except TeacherError as error:
            return _Outcome(how="failed", usage=error.usage, error=error.kind)
        return _Outcome(how="annotated", skills=skills, usage=usage)


def annotate_pool(samples: Iterable[Sample], config: TeacherConfig, *, cache_dir: Path, progress: bool = True,
                  limiter: Limiter | None = None, engine: Engine | None = None) -> AnnotationReport:
    """Fill `skills` on every sample that lacks them; see the module docstring for the guarantees.

    `limiter`: the run's limit on teacher requests in flight, when other roles share it (this process's workers).
    `engine`: where the calls run (`LocalEngine` by default; on Ray each worker holds its own limit). The driver
    alone reads and writes the annotation cache, as results arrive, so a kill loses only the calls in flight.
    """
    engine = engine or LocalEngine()
    identity = _identity(config.annotator or ReferenceBackend())
    store = ResponseCache(Path(cache_dir) / "annotations")
    report = AnnotationReport(samples=[])
    waiting: deque[Sample] = deque()  # sent and not yet back, in order

    def rows() -> Iterator[Row]:
        for sample in samples:
            waiting.append(sample)
            hit = None if sample.skills else store.get(content_hash(sample, identity))
            known = (_Outcome(how="passed", skills=sample.skills) if sample.skills else
                     None if hit is None else _Outcome(how="cached", skills=hit["skills"]))
            yield {"sample": "" if known else sample.model_dump_json(), "known": known.model_dump_json() if known else ""}

    kwargs: dict[str, Any] = {"config": config, "cache_dir": str(cache_dir)}
    spec = config.annotator
    key = os.environ.get(spec.api_key_env) if isinstance(spec, OpenAIBackend) else None
    env = {spec.api_key_env: key} if isinstance(spec, OpenAIBackend) and key else {}  # for workers elsewhere
    if isinstance(engine, LocalEngine):
        kwargs["limiter"] = limiter
    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    with tqdm(total=total, desc="annotating pool", unit="sample", disable=None if progress else True) as bar:
        # batches of a few requests per worker: a 50,000-sample pool never becomes 50,000 pending requests
        for result in engine.map(AnnotateWorker, kwargs, rows(), batch_size=8 * config.max_concurrency,
                                    env=env):
            sample = waiting.popleft()
            outcome = _Outcome.model_validate_json(result["outcome"])
            report.usage = report.usage.plus(outcome.usage)
            if outcome.how == "failed":
                report.failed[outcome.error] = report.failed.get(outcome.error, 0) + 1
                report.failed_ids.append(sample.id)
            elif outcome.how == "passed":
                report.passed_through += 1
                report.samples.append(sample)
            else:
                if outcome.how == "annotated":
                    store.put(content_hash(sample, identity), {"skills": outcome.skills, "sample_id": sample.id})
                    report.annotated += 1
                else:
                    report.cached += 1
                report.samples.append(sample.model_copy(update={"skills": outcome.skills}))
            bar.update(1)
            if report.usage.cost_usd is not None:
                bar.set_postfix(cost_usd=f"{report.usage.cost_usd:.4f}", refresh=False)  # the running cost
    return report
