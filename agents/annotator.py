"""Pool annotation: the annotator teacher writes the skills each pool sample teaches, once.

Every result is stored under the sample's content hash as soon as it is known,
so an interrupted annotation resumes where it stopped and a repeated one costs
nothing. Requests run concurrently (bounded by `teacher.max_concurrency`, the
run's one limit on teacher requests in flight).
Samples that already carry skills pass through untouched; with no annotator
model configured, skills come from the gold rationale steps. A sample the
teacher cannot annotate is skipped and counted, never silently dropped.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from gaptune.agents.llm.backends import ChatBackend, build_backend
from gaptune.agents.llm.case_prompt import user_message
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.llm.response_cache import ResponseCache
from gaptune.agents.llm.structured_output import schema_instructions, structured_call
from gaptune.agents.teacher_config import ReferenceBackend, TeacherConfig
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


class _LLMAnnotator:
    def __init__(self, backend: ChatBackend) -> None:
        self.backend = backend

    def annotate(self, sample: Sample) -> tuple[list[str], Usage]:
        rationale = "; ".join(step.text for step in sample.steps or [])
        prompt = (
            "You label training data. Name the skills a model practises by answering this question "
            "about the image(s).\n\n"
            f"Question: {sample.question_text()}\nAnswer: {sample.answer}\n"
            + (f"Worked solution: {rationale}\n" if rationale else "")
            + "\nUse short reusable labels such as counting, colour, spatial relation, text reading, "
              "chart reading, comparison.\n"
            + schema_instructions(AnnotateSampleArgs, {"sample_id": sample.id, "skills": ["counting", "comparison"]})
        )
        messages = [user_message(prompt, sample, vision=self.backend.vision)]
        args, usage = structured_call(self.backend, messages, AnnotateSampleArgs)
        recorded = annotate_sample.invoke({"sample_id": sample.id, "skills": args.skills})
        return list(recorded["skills"]), usage


def _from_rationale(sample: Sample) -> list[str]:
    return sorted({step.skill for step in sample.steps or []})


def _chunks(items: Iterable[Sample], size: int) -> Iterator[list[Sample]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def annotate_pool(samples: Iterable[Sample], config: TeacherConfig, *, cache_dir: Path,
                  progress: bool = True, limiter: Limiter | None = None) -> AnnotationReport:
    """Fill `skills` on every sample that lacks them; see the module docstring for the guarantees.

    `limiter`: the run's limit on teacher requests in flight, when other roles share it.
    """
    spec = config.annotator or ReferenceBackend()
    llm: _LLMAnnotator | None = None
    identity = "reference"
    if not isinstance(spec, ReferenceBackend):
        llm = _LLMAnnotator(build_backend(spec, cache_dir=cache_dir, cache=config.cache,
                                          limiter=limiter or request_limiter(config.max_concurrency)))
        identity = f"{spec.backend}:{spec.model}"
    store = ResponseCache(Path(cache_dir) / "annotations")
    report = AnnotationReport(samples=[])
    lock = threading.Lock()

    def one(sample: Sample) -> Sample | None:
        if sample.skills:
            with lock:
                report.passed_through += 1
            return sample
        key = content_hash(sample, identity)
        hit = store.get(key)
        if hit is not None:
            with lock:
                report.cached += 1
            return sample.model_copy(update={"skills": hit["skills"]})
        usage = Usage()
        try:
            if llm is None:
                skills = _from_rationale(sample)
                if not skills:
                    raise TeacherError("malformed", f"sample {sample.id!r} has no skills, no rationale steps and "
                                                    "no annotator model: configure teacher.annotator")
            else:
                skills, usage = llm.annotate(sample)
        except TeacherError as error:
            with lock:
                report.failed[error.kind] = report.failed.get(error.kind, 0) + 1
                report.failed_ids.append(sample.id)
                report.usage = report.usage.plus(error.usage)
            return None
        store.put(key, {"skills": skills, "sample_id": sample.id})
        with lock:
            report.annotated += 1
            report.usage = report.usage.plus(usage)
        return sample.model_copy(update={"skills": skills})

    total = len(samples) if hasattr(samples, "__len__") else None  # type: ignore[arg-type]
    with ThreadPoolExecutor(max_workers=config.max_concurrency) as pool, \
            tqdm(total=total, desc="annotating pool", unit="sample", disable=None if progress else True) as bar:
        # Bounded chunks: a 50,000-sample pool never becomes 50,000 pending futures.
        for chunk in _chunks(samples, 8 * config.max_concurrency):
            for result in pool.map(one, chunk):
                if result is not None:
                    report.samples.append(result)
                bar.update(1)
    return report
