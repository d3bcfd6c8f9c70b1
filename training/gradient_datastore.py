"""LESS-style gradient features: a warm-up LoRA, then each sample's projected LoRA gradient, cached as a datastore.

Following LESS (Xia et al., 2024; princeton-nlp/LESS): a short warm-up LoRA
on a small random share of the pool; then, with the warm-up model, every
pool sample's loss gradient on the LoRA weights, preconditioned with the
warm-up's Adam moments (`m / sqrt(v + eps)` after one more Adam update, as
their `obtain_gradients_with_adam`), and every target's plain gradient; both
projected by one fixed random Rademacher matrix to `projection_dim`. A pool
sample's influence on a target is the cosine of the two.

Where it deviates for a tiny CPU student: one checkpoint (the end of the
warm-up) instead of one per epoch weighted by learning rate; rank 8 on the
attention projections (LESS: 128) and 256 dimensions (LESS: 8,192), since
the tiny LoRA has ~33k weights; the student's own learning rate (LESS: 2e-5
for 7B models); per-sample gradients in batches, computed exactly from
each LoRA layer's inputs and output gradients (LESS: batch size 1).

The datastore lives in the cache under a fingerprint of the student, the
pool (its ids, in order) and the settings. Pool features are written in
chunks, each atomically, so a killed build resumes at the first missing
chunk; `manifest.json` is written last and marks it complete.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm
from transformers import TrainerCallback

from gaptune.data.atomic import open_atomic_binary, publish_directory, write_text_atomic
from gaptune.data.engine import Engine, LocalEngine
from gaptune.data.sample import Sample
from gaptune.training.batching import IGNORE_INDEX, training_batch
from gaptune.training.families import family_of
from gaptune.training.fit import FitSettings, fit
from gaptune.training.student import load_student

FORMAT_VERSION = 1
_CHUNK = 2048  # pool samples per chunk file: what a killed build loses at most
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # LESS's Adam constants


class DatastoreSettings(BaseModel):
    """The warm-up and the projection; every field is part of the datastore's fingerprint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_share: float = Field(default=0.05, gt=0.0, le=1.0)  # LESS: 5% of the pool
    warmup_epochs: int = Field(default=4, ge=1)  # LESS: 4
    lora_rank: int = Field(default=8, ge=1)
    lora_alpha: int = Field(default=32, ge=1)  # LESS: alpha = 4 x rank
    lora_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"  # LESS: the attention projections
    learning_rate: float = Field(default=1e-3, gt=0.0)
    batch_size: int = Field(default=32, ge=1)
    projection_dim: int = Field(default=256, ge=1)
    seed: int = 0


class DatastoreManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = FORMAT_VERSION
    fingerprint: str
    samples: int
    parameters: int
    projection_dim: int
    warmup_samples: int
    warmup_steps: int
    warmup_seconds: float
    feature_seconds: float


@dataclass
class Datastore:
    """A complete datastore: pool features (rows in pool order) and the warm-up model to featurise targets with."""

    directory: Path
    manifest: DatastoreManifest
    pool_ids: list[str]
    features: np.ndarray

    def target_features(self, student_path: str | Path, targets: Sequence[Sample], settings: DatastoreSettings,
                        *, device: str = "cpu") -> np.ndarray:
        """Plain (not preconditioned) projected gradients of `targets`, on their gold answers."""
        model, processor, names = _warm_model(student_path, self.directory / "warmup", settings, device)
        projection = _projection(_parameter_count(model, names), settings)
        rows = [_project(_per_sample_gradients(model, processor, list(targets[i:i + settings.batch_size]), names),
                         projection) for i in range(0, len(targets), settings.batch_size)]
        return np.concatenate(rows) if rows else np.zeros((0, settings.projection_dim), dtype=np.float32)


def fingerprint(student_path: str | Path, pool_ids: Sequence[str], settings: DatastoreSettings) -> str:
    """Student (its config and weights' size and mtime), pool ids in order, settings: a new one of any is a new store."""
    student = Path(student_path)
    identity = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(student.iterdir()) if p.is_file()]
    digest = hashlib.sha256(json.dumps([FORMAT_VERSION, str(student.resolve()), identity,
                                        settings.model_dump()]).encode())
    for sample_id in pool_ids:
        digest.update(sample_id.encode() + b"\n")
    return digest.hexdigest()[:16]


def open_or_build(
    root: Path, student_path: str | Path, pool: Sequence[Sample], settings: DatastoreSettings, *,
    device: str = "cpu", progress: bool = True, on_chunk: Callable[[int], None] | None = None,
    engine: Engine | None = None,
) -> Datastore:
    """The datastore for (student, pool, settings) under `root`: opened when complete, else built or resumed.

    The warm-up trains here; the pool's features are computed on `engine` (default: this process) and written
    here, chunk by chunk."""
    pool_ids = [s.id for s in pool]
    directory = Path(root) / fingerprint(student_path, pool_ids, settings)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        _build(directory, student_path, pool, settings, device=device, progress=progress, on_chunk=on_chunk,
               engine=engine)
    manifest = DatastoreManifest.model_validate_json(manifest_path.read_text())
    chunks = [np.load(directory / f"pool-{start:08d}.npy") for start in range(0, len(pool), _CHUNK)]
    return Datastore(directory, manifest, pool_ids, np.concatenate(chunks))


def _build(directory: Path, student_path: str | Path, pool: Sequence[Sample], settings: DatastoreSettings, *,
           device: str, progress: bool, on_chunk: Callable[[int], None] | None, engine: Engine | None) -> None:
    warmup = directory / "warmup"
    started = time.perf_counter()
    if not (warmup / "adam.pt").exists():
        _warm_up(warmup, student_path, pool, settings, device)
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    bar = tqdm(total=len(pool), desc="gradient datastore", unit="sample", disable=None if progress else True)
    missing = []
    for start in range(0, len(pool), _CHUNK):
        if (directory / f"pool-{start:08d}.npy").exists():
            bar.update(len(pool[start:start + _CHUNK]))
        else:
            missing.append(start)
    rows = ({"sample": sample.model_dump_json()} for start in missing for sample in pool[start:start + _CHUNK])
    worker = {"student_path": str(student_path), "warmup": str(warmup), "settings": settings.model_dump(),
              "device": device}
    features = (engine or LocalEngine()).map(PoolFeatureWorker, worker, rows, batch_size=settings.batch_size)
    for start in missing:
        block = list(islice(features, len(pool[start:start + _CHUNK])))
        with open_atomic_binary(directory / f"pool-{start:08d}.npy") as stream:
            np.save(stream, np.stack([row["feature"] for row in block]))
        if on_chunk is not None:
            on_chunk(start)
        bar.update(len(block))
    bar.close()
    warm = json.loads((warmup / "warmup.json").read_text())
    manifest = DatastoreManifest(fingerprint=directory.name, samples=len(pool), parameters=_parameters(warmup),
                                 projection_dim=settings.projection_dim, warmup_samples=warm["samples"],
                                 warmup_steps=warm["steps"], warmup_seconds=warmup_seconds,
                                 feature_seconds=time.perf_counter() - started)
    write_text_atomic(directory / "manifest.json", manifest.model_dump_json(indent=2))


class PoolFeatureWorker:
    """The engine's worker: pool samples (rows {sample: JSON}) -> {feature}, their projected Adam-preconditioned
    gradients under the warm-up adapter. Built once per process: the warm model, Adam's moments, the projection."""

    def __init__(self, student_path: str, warmup: str, settings: dict[str, Any], device: str) -> None:
        self.settings = DatastoreSettings.model_validate(settings)
        self.model, self.processor, self.names = _warm_model(student_path, Path(warmup), self.settings, device)
        self.moments = torch.load(Path(warmup) / "adam.pt")
        self.projection = _projection(_parameter_count(self.model, self.names), self.settings)

    def __call__(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        samples = [Sample.model_validate_json(row["sample"]) for row in rows]
        gradients = _per_sample_gradients(self.model, self.processor, samples, self.names)
        return [{"feature": feature} for feature in _project(_adam_direction(gradients, self.moments), self.projection)]


def _parameters(warmup: Path) -> int:
    """The warm-up adapter's trainable parameter count (the projection's input size), read from its moments."""
    moments: dict[str, dict[str, torch.Tensor]] = torch.load(warmup / "adam.pt")
    return sum(m["exp_avg"].numel() for m in moments.values())


def _lora(settings: DatastoreSettings) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                      target_modules=settings.lora_modules, bias="none")


def _warm_up(target: Path, student_path: str | Path, pool: Sequence[Sample], settings: DatastoreSettings,
             device: str) -> None:
    """Train the warm-up LoRA on a seeded random share of the pool; keep the adapter and Adam's moments."""
    from peft import get_peft_model

    share = max(1, round(len(pool) * settings.warmup_share))
    chosen = random.Random(settings.seed).sample(range(len(pool)), share)
    samples = [pool[i] for i in sorted(chosen)]
    torch.manual_seed(settings.seed)
    model, processor = load_student(student_path, device=device)
    model = get_peft_model(model, _lora(settings))
    capture = _AdamCapture()
    result = fit(model, processor, samples, FitSettings(
        device=device, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
        epochs=settings.warmup_epochs, warmup_fraction=0.03, group_by_length=False, seed=settings.seed,
        progress="gradient warm-up"), callbacks=[capture])
    names = _trainable_names(model)
    by_parameter = dict(model.named_parameters())
    moments = {name: {key: capture.state[by_parameter[name]][key].detach().cpu()
                      for key in ("exp_avg", "exp_avg_sq")} for name in names}
    with publish_directory(target) as staging:
        model.save_pretrained(staging)
        torch.save(moments, staging / "adam.pt")
        (staging / "warmup.json").write_text(json.dumps({"samples": len(samples), "steps": result.steps}))


class _AdamCapture(TrainerCallback):
    """Keeps the optimizer's per-parameter state when training ends (what LESS reads from optimizer.bin)."""

    def __init__(self) -> None:
        self.state: dict[Any, dict[str, torch.Tensor]] = {}

    def on_train_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        inner = getattr(optimizer, "optimizer", optimizer)
        self.state = dict(inner.state)


def _trainable_names(model: Any) -> list[str]:
    return sorted(name for name, p in model.named_parameters() if p.requires_grad)


def _warm_model(student_path: str | Path, warmup: Path, settings: DatastoreSettings,
                device: str) -> tuple[Any, Any, list[str]]:
    from peft import PeftModel

    model, processor = load_student(student_path, device=device)
    model = PeftModel.from_pretrained(model, warmup, is_trainable=True)
    model.eval()
    return model, processor, _trainable_names(model)


def _parameter_count(model: Any, names: Sequence[str]) -> int:
    parameters = dict(model.named_parameters())
    return sum(parameters[name].numel() for name in names)


def _projection(parameters: int, settings: DatastoreSettings) -> torch.Tensor:
    """A fixed Rademacher matrix (+-1/sqrt(dim)), the same for pool and targets: JL keeps inner products."""
    generator = torch.Generator().manual_seed(settings.seed)
    signs = torch.randint(0, 2, (parameters, settings.projection_dim), generator=generator, dtype=torch.int8)
    return (signs.float() * 2 - 1) / settings.projection_dim ** 0.5


def _per_sample_gradients(model: Any, processor: Any, samples: list[Sample], names: Sequence[str]) -> torch.Tensor:
    """Each sample's gradient of its own mean answer-token loss on the LoRA weights: (samples, parameters).

    One forward and backward for the batch: the summed per-sample losses keep
    samples apart, and a linear layer's per-sample weight gradient is the sum
    over positions of its output gradient times its input, which hooks on the
    LoRA layers capture.
    """
    modules = dict(model.named_modules())
    layers = {name: modules[name.removesuffix(".weight")] for name in names}
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    def keep(name: str) -> Callable[[Any, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def hook(_module: Any, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            inputs[name] = args[0].detach()
            out.register_hook(lambda grad: outputs.__setitem__(name, grad.detach()))
        return hook

    for name, layer in layers.items():
        handles.append(layer.register_forward_hook(keep(name)))
    try:
        batch = training_batch(processor, samples, family=family_of(model))
        labels = batch.pop("labels")
        device = next(model.parameters()).device
        logits = model(**{key: value.to(device) for key, value in batch.items()}).logits.float()
        targets = labels[:, 1:].to(device)
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets,
                                                   ignore_index=IGNORE_INDEX, reduction="none")
        mask = (targets != IGNORE_INDEX).float()
        per_sample = (losses * mask).sum(1) / mask.sum(1).clamp(min=1)
        model.zero_grad(set_to_none=True)
        per_sample.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    rows = [torch.einsum("bto,bti->boi", outputs[name], inputs[name]).flatten(1) for name in names]
    return torch.cat(rows, dim=1).cpu()


def _adam_direction(gradients: torch.Tensor, moments: dict[str, dict[str, torch.Tensor]]) -> torch.Tensor:
    """LESS's Adam-preconditioned direction: one more Adam update of the warm-up moments with each gradient."""
    names = sorted(moments)
    avg = torch.cat([moments[n]["exp_avg"].flatten() for n in names])
    avg_sq = torch.cat([moments[n]["exp_avg_sq"].flatten() for n in names])
    updated_avg = _BETA1 * avg + (1 - _BETA1) * gradients
    updated_avg_sq = _BETA2 * avg_sq + (1 - _BETA2) * gradients ** 2
    return updated_avg / torch.sqrt(updated_avg_sq + _EPS)


def _project(gradients: torch.Tensor, projection: torch.Tensor) -> np.ndarray:
    return (gradients @ projection).numpy().astype(np.float32)
