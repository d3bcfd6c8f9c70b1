"""The training room's config: how rounds tune the student, and the tiny student's recipe.

Kept free of torch, transformers and peft, so reading or checking a run config
(and `gaptune trace`, `gaptune report`) stays fast.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gaptune.data.world.world import DEFAULT_MIX, known_mix
from gaptune.training.candidate_kinds import known_kind

Device = Literal["auto", "cpu", "cuda"]
# A kind of candidate adapter (training/candidate_kinds), checked when a config is read.
CandidateKind = Annotated[str, AfterValidator(known_kind)]
# A pretraining mix of the world, checked when a config is read.
MixName = Annotated[str, AfterValidator(known_mix)]

# Bump when the architecture, initialisation or pretraining recipe changes, so
# cached students built by older code are not mistaken for current ones.
# 4: pretraining through the shared Trainer path (epoch-wise shuffling instead
# of independent batches, no weight decay on biases and norms).
RECIPE_VERSION = 4


class StudentServerConfig(BaseModel):
    """An OpenAI-compatible server (vLLM) serving the student: evaluation is sent there instead of run in-process.

    Each round's adapter is loaded into the server at run time (vLLM's
    `/v1/load_lora_adapter`), so the server must see the run directory and
    allow runtime LoRA updates, e.g.
    `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve STUDENT --enable-lora --max-lora-rank 16`.
    It applies one LoRA adapter on the language model: `lora` or `in-context`
    candidates of a single kind, never `connector` or a chain of kinds.
    """

    model_config = ConfigDict(extra="forbid")

    base_url: str  # e.g. http://localhost:8000/v1
    model: str  # the base model's name on the server (vllm serve's --served-model-name, or its path)
    api_key_env: str | None = None  # environment variable holding the server's API key, if it wants one
    # Evaluation requests in flight to this server (it batches them); not teacher.max_concurrency
    # (teacher requests) nor the top-level max_concurrency (graph branches).
    max_concurrency: int = Field(default=64, ge=1)
    timeout_s: float = Field(default=300.0, gt=0)
    max_retries: int = Field(default=3, ge=0)


class FamilyConfig(BaseModel):
    """Overrides of the student family's registry entry; each unset field keeps the registry's value.

    For a model type the registry does not know, `lora_modules` and
    `connector_modules` are required and the rest default as for LLaVA.
    """

    model_config = ConfigDict(extra="forbid")

    model_type: str | None = None  # read the checkpoint as this registered family
    lora_modules: str | None = None  # regex over module names: what plain LoRA and in-context adapt
    connector_modules: str | None = None  # regex over module names: what the connector candidate adapts
    connector_parameters: list[str] | None = None  # bare weight matrices of the connector (PEFT target_parameters)
    padding_side: Literal["left", "right"] | None = None  # for batched generation
    multi_image: bool | None = None  # several images in one prompt (the in-context candidate needs it)
    end_of_turn: str | None = None  # the text that ends an answer; the tokenizer's end-of-sequence when unset


class TrainerConfig(BaseModel):
    """How each round tunes the student. `candidates` train one after another; validation picks one."""

    model_config = ConfigDict(extra="forbid")

    candidates: list[CandidateKind] = Field(default=["lora"], min_length=1)
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    # What the student's family needs (LoRA targets, connector, padding, ...): the registry's
    # entry for its model type (training/families.py) unless set here.
    family: FamilyConfig = Field(default_factory=FamilyConfig)
    # lr 1e-3, 5 epochs: measured on the embedded default (3 epochs at 2e-3
    # did not teach counting from 900 samples; 5 at 1e-3 does from 2,400).
    learning_rate: float = 1e-3
    epochs: int = 5
    batch_size: int = Field(32, ge=1)  # per device and micro-step; the optimizer sees x gradient_accumulation
    warmup_fraction: float = 0.05
    in_context_k: int = 2
    device: Device = "auto"
    # bf16 autocast compute (mixed precision); trainable weights and optimizer
    # state stay fp32. auto: on when training on a GPU that supports bf16.
    bf16: bool | Literal["auto"] = "auto"
    # dtype of the frozen base weights. bfloat16 halves a large student's
    # memory (the standard LoRA recipe); the adapter itself stays fp32.
    base_dtype: Literal["float32", "bfloat16"] = "float32"
    gradient_checkpointing: bool = False
    gradient_accumulation: int = Field(1, ge=1)
    # Batches of similar lengths: less padding (1.3x the tokens/s of the tiny
    # benchmark), but on a round's small set a batch then holds one family:
    # measured on the embedded default (count-weak, error-driven, budget 800,
    # 15 epochs), test 0.684 with bucketing against 0.792 without. Off by
    # default; turn it on for throughput on large selections.
    group_by_length: bool = False
    # Loader worker processes; auto: 4 on a GPU, 0 on CPU.
    dataloader_workers: int | Literal["auto"] = "auto"


class TinyStudentConfig(BaseModel):
    """Architecture and pretraining recipe; its hash names the cache entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The world the student pretrains on; the run's task and pool come from the top-level world_seed.
    world_seed: int = 0
    seed: int = 0
    # Which skills the student is weak in: a key of the world's PRETRAIN_MIXES.
    mix: MixName = DEFAULT_MIX
    vocab_size: int = 640
    vision_hidden: int = 64
    vision_layers: int = 1
    text_hidden: int = 128
    text_layers: int = 4
    text_heads: int = 4
    pretrain_samples: int = 60_000
    # 4,500: at 1,500 steps the student had not learnt to perceive (pool
    # localisation accuracy .45, counting .45), so perception, which no pool
    # data fixes, bounded every arm; at 4,500 it locates every object (.97)
    # while counting, rare in its mix, stays weak (.51). See bench/converged.
    steps: int = 4_500
    batch_size: int = 48
    # 5e-4: at 2e-3 the language model learns the text and never starts
    # reading the image tokens (a single object's colour stayed at chance);
    # at 5e-4 it reads it perfectly within 200 steps.
    learning_rate: float = 5e-4
    # Where to pretrain (auto: the GPU when there is one, with bf16 autocast).
    # Not part of the fingerprint: it changes the numerics, not the recipe.
    device: Device = "auto"

    def fingerprint(self) -> str:
        recipe = f"{RECIPE_VERSION}/{self.model_dump_json(exclude={'device'})}"
        return hashlib.sha256(recipe.encode()).hexdigest()[:12]
