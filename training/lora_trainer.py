"""Tuning the student with PEFT adapters: plain LoRA, connector-only, or LoRA on in-context examples.

An adapter is saved in the Hugging Face adapter format plus a small
`gaptune_adapter.json` naming its kind and its parent: the adapter merged
underneath it. A round's candidate continues from the previous round's chosen
adapter when it is of the same kind; otherwise it merges that adapter into
the weights and starts a fresh one. Loading any adapter replays that chain.

Training itself is `fit` (transformers' Trainer), shared with the tiny
student's pretraining. Mixed precision is the standard recipe: bf16 autocast
compute on a GPU, adapter weights and optimizer state in fp32; the frozen
base may be loaded in bf16 (`base_dtype`) to halve its memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from pydantic import BaseModel

from gaptune.data.atomic import publish_directory
from gaptune.data.errors import ConfigError
from gaptune.data.sample import Sample
from gaptune.training.candidate_kinds import kind_spec
from gaptune.training.config import CandidateKind, TrainerConfig
from gaptune.training.families import Family, family_of
from gaptune.training.fit import (
    FitSettings,
    device_for_loading,
    fit,
    is_main_process,
    resolve_bf16,
    resolve_device,
    resolve_workers,
    wait_for_all_processes,
)
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.student import load_student

ADAPTER_META = "gaptune_adapter.json"


class AdapterInfo(BaseModel):
    kind: CandidateKind
    parent: str | None = None
    train_size: int
    steps: int
    final_loss: float
    in_context_k: int = 0


def read_adapter_info(adapter: str | Path) -> AdapterInfo:
    return AdapterInfo.model_validate_json((Path(adapter) / ADAPTER_META).read_text())


def _merge_chain(model: Any, adapter: str | None) -> Any:
    """Merge `adapter` and everything beneath it into the model's weights, oldest first."""
    if adapter is None:
        return model
    info = read_adapter_info(adapter)
    model = _merge_chain(model, info.parent)
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def load_adapted(student_path: str | Path, adapter: str | None, *, device: str = "cpu") -> tuple[Any, Any]:
    """The student with an adapter (and its chain) applied, ready for evaluation."""
    model, processor = load_student(student_path, device=device)
    model = _merge_chain(model, adapter)
    model.eval()
    return model, processor


def _lora_config(kind: CandidateKind, family: Family, config: TrainerConfig) -> LoraConfig:
    key = kind_spec(kind).modules_key
    modules = getattr(family, key)
    parameters = list(family.connector_parameters) if key == "connector_modules" else []
    return LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=modules or [], target_parameters=parameters or None, bias="none")


def _prepare(
    student_path: str | Path, kind: CandidateKind, previous: str | None, config: TrainerConfig, device: str
) -> tuple[Any, Any, str | None]:
    """Model with a trainable fp32 adapter of `kind`, and the parent chain the new adapter sits on."""
    dtype = torch.bfloat16 if config.base_dtype == "bfloat16" else torch.float32
    model, processor = load_student(student_path, device=device, dtype=dtype)
    if previous is not None and read_adapter_info(previous).kind == kind:
        parent = read_adapter_info(previous).parent
        model = _merge_chain(model, parent)
        return _trainable_in_fp32(PeftModel.from_pretrained(model, previous, is_trainable=True)), processor, parent
    return attach_adapter(_merge_chain(model, previous), kind, config), processor, previous


def attach_adapter(model: Any, kind: CandidateKind, config: TrainerConfig) -> Any:
    """A fresh trainable adapter of `kind` on `model` (LoRA on the connector alone for `connector`), in fp32.

    The modules come from the student's family entry (training/families.py) or `trainer.family`.
    """
    family = family_of(model, config.family)
    try:
        peft_model = get_peft_model(model, _lora_config(kind, family, config))
    except ValueError as error:
        key = kind_spec(kind).modules_key
        raise ConfigError(
            f"trainer: no module of the {family.name} student matches the {kind!r} pattern {getattr(family, key)!r} "
            f"(set trainer.family.{key}): {error}"
        ) from error
    return _trainable_in_fp32(peft_model)


def _trainable_in_fp32(model: Any) -> Any:
    """Adapter weights (and so their gradients and optimizer state) in fp32 whatever the base's dtype."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()
    return model


def fit_settings(config: TrainerConfig, device: str, seed: int, kind: CandidateKind = "lora") -> FitSettings:
    """The shared training path's settings for one candidate: linear warmup and decay, no weight decay."""
    return FitSettings(
        device=device, batch_size=config.batch_size, learning_rate=config.learning_rate, epochs=config.epochs,
        warmup_fraction=config.warmup_fraction, weight_decay=0.0, max_grad_norm=1.0,
        bf16=resolve_bf16(config.bf16, device), gradient_checkpointing=config.gradient_checkpointing,
        gradient_accumulation=config.gradient_accumulation, group_by_length=config.group_by_length,
        dataloader_workers=resolve_workers(config.dataloader_workers, device), seed=seed,
        progress=f"training {kind} candidate",
    )


def train_candidate(
    student_path: str | Path,
    kind: CandidateKind,
    train_set: Sequence[Sample],
    output_dir: str | Path,
    config: TrainerConfig,
    *,
    previous: str | None = None,
    seed: int = 0,
) -> AdapterInfo:
    """Train one candidate adapter on `train_set` and save it to `output_dir` (atomically)."""
    if not train_set:
        raise ValueError("trainer: the training set is empty; nothing was selected this round")
    device = resolve_device(config.device)
    torch.manual_seed(seed)  # the adapter's initialisation
    model, processor, parent = _prepare(student_path, kind, previous, config, device_for_loading(device))
    family = family_of(model, config.family)
    in_context_k = config.in_context_k if kind_spec(kind).demonstrations else 0
    if in_context_k and not family.multi_image:
        raise ConfigError(f"trainer: the {kind} candidate puts several images in one prompt, which the "
                          f"{family.name} student does not take (trainer.family.multi_image); drop it from "
                          "trainer.candidates")
    demonstrations = pick_demonstrations(train_set, train_set, k=in_context_k, seed=seed) if in_context_k else {}
    result = fit(model, processor, train_set, fit_settings(config, device, seed, kind), demonstrations=demonstrations,
                 family=family)
    info = AdapterInfo(kind=kind, parent=parent, train_size=len(train_set), steps=result.steps,
                       final_loss=result.final_loss,
                       in_context_k=in_context_k)
    if is_main_process():
        save_adapter(model, info, Path(output_dir))
    wait_for_all_processes()
    return info


def save_adapter(model: Any, info: AdapterInfo, target: Path) -> None:
    """The trained adapter and what it is (kind, parent chain, training size), published atomically."""
    with publish_directory(target) as staging:
        model.save_pretrained(staging)
        (staging / ADAPTER_META).write_text(info.model_dump_json(indent=2))


def trainable_fraction(student_path: str | Path, kind: CandidateKind, config: TrainerConfig) -> float:
    """Share of the student's parameters an adapter of `kind` trains (connector-only is tiny)."""
    model, _, _ = _prepare(student_path, kind, None, config, "cpu")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable / sum(p.numel() for p in model.parameters())
