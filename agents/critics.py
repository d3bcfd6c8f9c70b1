"""Building the configured critics: each one locates the wrong step and names the missing skill.

An LLM critic locates the step with its method (`prompt` or `answer-switch`),
then the skill analyst names the skill (when no analyst is configured the
critic's own model does; with `prompt` it does so in the same call). A
configured fallback teacher takes over a case the critic gave up on. Whatever
happens, a critic either returns a `Critique` or raises `TeacherError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from gaptune.agents.answer_switch import answer_switch
from gaptune.agents.llm.backends import ChatBackend, build_backend
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import Limiter, request_limiter
from gaptune.agents.prompt_critic import locate_by_prompt
from gaptune.agents.reference_critic import ReferenceTeacher
from gaptune.agents.skill_analyst import SkillAnalyst
from gaptune.agents.step_reader import StepReaderTeacher
from gaptune.agents.teacher_config import (
    BackendConfig,
    ReaderBackend,
    ReferenceBackend,
    TeacherConfig,
    WorldBackend,
)
from gaptune.agents.world_teacher import world_critic
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique, Usage
from gaptune.data.sample import Sample


class Critic(Protocol):
    """Finds the first wrong step of an attempt and names the skill it lacked."""

    name: str
    where: str
    """Where the critic runs (model and server URL, or in-process), for error messages."""

    def critique(self, sample: Sample, attempt: Attempt) -> Critique: ...


class LLMCritic:
    """A chat model as critic, with method `prompt` or `answer-switch`."""

    def __init__(self, name: str, backend: ChatBackend, *, method: str, analyst: SkillAnalyst | None,
                 delta: float, lam: int) -> None:
        self.name = name
        self.backend = backend
        self.where = backend.where
        self.method = method
        self.analyst = analyst
        self.delta = delta
        self.lam = lam

    def critique(self, sample: Sample, attempt: Attempt) -> Critique:
        spent = [Usage(model=self.backend.model)]  # what earlier stages cost, kept when a later one fails
        try:
            return self._critique(sample, attempt, spent)
        except TeacherError as error:
            error.usage = spent[0].plus(error.usage)
            raise
        except Exception as error:
            raise TeacherError("server_error", f"{self.name}: {type(error).__name__}: {error}",
                               usage=spent[0]) from error

    def _critique(self, sample: Sample, attempt: Attempt, spent: list[Usage]) -> Critique:
        method = self.method
        if method == "answer-switch" and attempt.answer is not None:
            trace, call_usage = answer_switch(self.backend, sample, attempt, delta=self.delta, lam=self.lam)
            spent[0] = spent[0].plus(call_usage)
            wrong_step = trace.wrong_step
            lead = ", ".join(f"{s - g:+.2f}" for g, s in zip(trace.gold, trace.student, strict=True))
            explanation = f"student-answer lead per prefix: {lead}"
            skill = None
        else:
            # Without a student answer there is nothing to switch to: locate by prompt instead.
            method = "prompt"
            verdict, call_usage = locate_by_prompt(self.backend, sample, attempt)
            spent[0] = spent[0].plus(call_usage)
            wrong_step, skill, explanation = verdict.wrong_step - 1, verdict.missing_skill, verdict.explanation
        if skill is None or self.analyst is not None:
            analyst = self.analyst or SkillAnalyst(self.backend)
            analysis, call_usage = analyst.analyse(sample, attempt, wrong_step)
            spent[0] = spent[0].plus(call_usage)
            skill = analysis.missing_skill
            explanation = f"{explanation}; {analysis.explanation}".strip("; ")
        return Critique(sample_id=sample.id, teacher=self.name, method=method, wrong_step=wrong_step,
                        missing_skill=skill, explanation=explanation, usage=spent[0])


class FallbackCritic:
    """Tries the critic, and on `TeacherError` the fallback teacher; both failing raises `TeacherError`."""

    def __init__(self, primary: Critic, fallback: Critic) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = primary.name
        self.where = f"{primary.where}, fallback {fallback.where}"

    def critique(self, sample: Sample, attempt: Attempt) -> Critique:
        try:
            return self.primary.critique(sample, attempt)
        except TeacherError as first:
            spent = first.usage
            try:
                result = self.fallback.critique(sample, attempt)
            except (TeacherError, ValueError) as second:
                extra = second.usage if isinstance(second, TeacherError) else Usage()
                raise TeacherError(first.kind, f"{first}; fallback {self.fallback.name} failed too: {second}",
                                   usage=spent.plus(extra)) from second
            return result.model_copy(update={
                "teacher": f"{self.fallback.name} (fallback for {self.name})",
                "explanation": f"{self.name} gave up ({first.kind}); {result.explanation}",
                "usage": spent.plus(result.usage),
            })


def _critic(config: BackendConfig, name: str, teacher: TeacherConfig, analyst: SkillAnalyst | None,
            cache_dir: Path, limiter: Limiter) -> Critic:
    if isinstance(config, ReferenceBackend):
        reference = ReferenceTeacher()
        reference.name = name
        return reference
    if isinstance(config, ReaderBackend):
        return StepReaderTeacher(name, locate=config.locate)
    if isinstance(config, WorldBackend):
        return world_critic(config, name, delta=teacher.answer_switch_delta, lam=teacher.answer_switch_lambda)
    backend = build_backend(config, cache_dir=cache_dir, cache=teacher.cache, limiter=limiter)
    # teacher.method 'reference' with an LLM critic or fallback is refused when the config is read.
    return LLMCritic(name, backend, method=teacher.method, analyst=analyst,
                     delta=teacher.answer_switch_delta, lam=teacher.answer_switch_lambda)


def backend_name(config: BackendConfig) -> str:
    """A readable default name: the backend and the model's last path part."""
    if config.name:
        return config.name
    if isinstance(config, ReferenceBackend):
        return "reference"
    if isinstance(config, ReaderBackend):
        return "reader" if config.locate == "first-wrong" else f"reader-{config.locate}"
    if isinstance(config, WorldBackend):
        return f"world:{Path(config.model).name}"
    return f"{config.backend}:{config.model.rstrip('/').rsplit('/', 1)[-1]}"


def build_critics(config: TeacherConfig, *, cache_dir: Path, limiter: Limiter | None = None) -> list[Critic]:
    """One critic per `config.critics` entry, names unique (the graph sends one branch per case and critic).

    `limiter` is the run's one bound on teacher requests in flight; pass the
    same one to `build_judge` and `annotate_pool` (a fresh one when omitted).
    """
    limiter = limiter or request_limiter(config.max_concurrency)
    analyst = None
    if config.skill_analyst is not None:
        analyst = SkillAnalyst(build_backend(config.skill_analyst, cache_dir=cache_dir, cache=config.cache,
                                             limiter=limiter))
    seen: dict[str, int] = {}
    critics: list[Critic] = []
    for entry in config.critics:
        base = backend_name(entry)
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base}#{seen[base]}"
        critic = _critic(entry, name, config, analyst, cache_dir, limiter)
        if config.fallback is not None:
            fallback = _critic(config.fallback, f"{backend_name(config.fallback)}", config, analyst, cache_dir, limiter)
            critic = FallbackCritic(critic, fallback)
        critics.append(critic)
    return critics
