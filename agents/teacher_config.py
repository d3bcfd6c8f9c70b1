"""The `teacher:` block of a run config: which model plays which teacher role.

Swapping a teacher is changing one backend block. Roles are separate so a cheap
model can annotate the pool while a strong one critiques. The defaults
are LLM-free: one `reader` critic, agreement voting, no annotator (pool skills
come from the data or from gold rationale steps).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ReferenceBackend(BaseModel):
    """Gold rationale steps as the teacher: exact, free, needs `Sample.steps`."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["reference"] = "reference"
    name: str | None = None


class ReaderBackend(BaseModel):
    """Gold rationale step *texts* as the teacher, never their skill labels (see `agents/step_reader.py`).

    `locate: random` is the ablation of mistake identification.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["reader"] = "reader"
    name: str | None = None
    locate: Literal["first-wrong", "random"] = "first-wrong"


class OpenAIBackend(BaseModel):
    """Any OpenAI-compatible chat endpoint: OpenAI itself, vLLM, `transformers serve`, llama.cpp.

    `api_key_env` names the environment variable holding the key; the key
    itself never enters the config, so it cannot leak into a resolved config,
    a checkpoint or a report. `timeout_s` and `max_retries` go to the openai
    client, which retries timeouts, dropped connections, 408/409/429/5xx and
    replies that are not JSON, backing off exponentially from 0.5 s (or as long
    as the server's Retry-After asks).
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["openai"] = "openai"
    name: str | None = None
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, gt=0)
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=3, ge=0, description="the openai client's retries (its own backoff, Retry-After honoured)")
    price_in_per_1m: float | None = Field(default=None, ge=0)
    price_out_per_1m: float | None = Field(default=None, ge=0)
    vision: bool = False

    @field_validator("api_key_env")
    @classmethod
    def _looks_like_env_name(cls, value: str) -> str:
        if not _ENV_NAME_RE.fullmatch(value):
            raise ValueError(
                "api_key_env must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                "never the key itself"
            )
        return value


class HFBackend(BaseModel):
    """A local transformers causal LM run in-process: log-probabilities without a server."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["hf"] = "hf"
    name: str | None = None
    model: str = Field(min_length=1, description="a local save_pretrained directory or a cached model name")
    device: str = "cpu"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(default=256, gt=0)
    price_in_per_1m: float | None = Field(default=None, ge=0)
    price_out_per_1m: float | None = Field(default=None, ge=0)


class WorldBackend(BaseModel):
    """An image-text model of the task's world (a save_pretrained directory) as an answer-switch critic.

    It always locates by answer-switch, whatever `teacher.method` says, and reads
    only the gold answer: see `agents/world_teacher.py`.
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["world"] = "world"
    name: str | None = None
    model: str = Field(min_length=1, description="a save_pretrained directory of an image-text-to-text model")
    device: str = "cpu"


BackendConfig = Annotated[ReferenceBackend | ReaderBackend | OpenAIBackend | HFBackend | WorldBackend,
                          Field(discriminator="backend")]
GoldStepBackends = (ReferenceBackend, ReaderBackend)
LLMBackendConfig = Annotated[OpenAIBackend | HFBackend, Field(discriminator="backend")]
AnnotatorConfig = Annotated[ReferenceBackend | OpenAIBackend | HFBackend, Field(discriminator="backend")]
"""The reader has no annotator role: it reads step texts, never the skills a sample teaches."""


def _default_critic() -> ReferenceBackend | ReaderBackend | OpenAIBackend | HFBackend | WorldBackend:
    # The reader, not the reference: the reference reads the gold steps' skill
    # labels, which makes diagnosis an identity map onto the pool's vocabulary.
    return ReaderBackend()


class TeacherConfig(BaseModel):
    """Every teacher role of a run.

    `method` is how LLM critics locate the wrong step (reference critics always
    compare with gold steps). `answer_switch_delta`/`answer_switch_lambda`:
    the student's answer must lead the gold one by more than delta (in
    log-probability) and stay ahead for lambda consecutive steps.
    `max_concurrency` bounds the teacher requests in flight for the whole run,
    all roles together. `max_failed_share`, `fail_fast_after`: when a critic
    counts as dead (see `agents/teacher_health.py`).
    """

    model_config = ConfigDict(extra="forbid")

    critics: list[BackendConfig] = Field(default_factory=lambda: [_default_critic()], min_length=1)
    method: Literal["reference", "prompt", "answer-switch"] = "prompt"
    answer_switch_delta: float = Field(default=0.0, ge=0.0)
    answer_switch_lambda: int = Field(default=1, ge=1)
    skill_analyst: LLMBackendConfig | None = None
    judge: LLMBackendConfig | None = None
    annotator: AnnotatorConfig | None = None
    fallback: BackendConfig | None = None
    max_concurrency: int = Field(default=4, ge=1)
    cache: bool = True
    # A critic failing more than this share of a round's cases (or all of them) stops the run (exit 2,
    # resumable); below it its failed cases are counted skips.
    max_failed_share: float = Field(default=0.5, ge=0.0, le=1.0)
    # Failed cases in a row after which a critic's remaining cases of the round are not sent.
    fail_fast_after: int = Field(default=8, ge=1)
    # One model-list request per teacher server before any work.
    check_servers: bool = True

    @model_validator(mode="after")
    def _method_fits_backends(self) -> TeacherConfig:
        if self.method == "answer-switch":
            for critic in self.critics:
                if isinstance(critic, OpenAIBackend) and critic.vision:
                    raise ValueError(
                        f"teacher.critics: answer-switch scores text prefixes; critic {critic.model!r} "
                        "has vision: true, which answer-switch does not use (set vision: false or method: prompt)"
                    )
        if self.method == "reference":
            llm = [c for c in [*self.critics, *([self.fallback] if self.fallback else [])]
                   if not isinstance(c, (*GoldStepBackends, WorldBackend))]
            if llm:
                raise ValueError(
                    "teacher.method is 'reference' but teacher.critics or teacher.fallback has LLM backends "
                    f"({', '.join(c.backend for c in llm)}), which cannot compare with gold steps: "
                    "set method to 'prompt' or 'answer-switch'"
                )
        return self


def http_teachers(config: TeacherConfig) -> list[tuple[str, OpenAIBackend]]:
    """Every role of a run played by an OpenAI-compatible server, with the config key that names it.

    The annotator is not one: it works in `gaptune pool annotate`, which checks it itself.
    """
    roles: list[tuple[str, BackendConfig | None]] = [
        *((f"teacher.critics[{k}]", critic) for k, critic in enumerate(config.critics)),
        ("teacher.fallback", config.fallback), ("teacher.skill_analyst", config.skill_analyst),
        ("teacher.judge", config.judge),
    ]
    return [(role, backend) for role, backend in roles if isinstance(backend, OpenAIBackend)]
