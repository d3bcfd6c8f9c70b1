"""The one training loop: transformers' `Trainer` over `training_batch`, for adapters and for the tiny student.

Both the LoRA rounds (`lora_trainer.train_candidate`) and the tiny student's
pretraining (`tiny_student.pretrain`) call `fit`; what differs between them is
a `FitSettings` value. The Trainer brings what a hand-written loop would have
to re-implement: bf16 autocast with fp32 master weights, fused AdamW,
gradient accumulation and checkpointing, its own schedules, DDP under
`accelerate launch`/`torchrun`, and no host sync per step except at logging.

What gaptune adds on top is small: a data collator that is `training_batch`,
a length-bucketing sampler fed with lengths computed up front (the dataset
holds `Sample`s, not token ids, so the Trainer cannot measure them), and a
tally of real and padded tokens kept on the device until training ends.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch.utils.data import RandomSampler, Sampler
from tqdm.auto import tqdm
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from gaptune.data.errors import ConfigError
from gaptune.data.live_events import TrainingStep, announce, is_listened
from gaptune.data.sample import Sample
from gaptune.training.batching import NO_DEMONSTRATIONS, training_batch, training_lengths
from gaptune.training.families import Family, family_of


def resolve_device(requested: str) -> str:
    """`auto` is the GPU when there is one; asking for `cuda` without one is an error naming the key."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested (trainer.device / student.tiny.device) but torch sees no CUDA "
                          "device; set it to auto or cpu")
    if requested not in ("cpu", "cuda"):
        raise ConfigError(f"device {requested!r}: expected auto, cpu or cuda")
    return requested


def resolve_bf16(requested: bool | str, device: str) -> bool:
    """bf16 autocast: `auto` turns it on exactly when training on a GPU that supports bf16."""
    if requested == "auto":
        return device == "cuda" and torch.cuda.is_bf16_supported()
    return bool(requested)


def resolve_workers(requested: int | str, device: str) -> int:
    """Loader worker processes: `auto` is 4 on a GPU (batches are built while the GPU computes), 0 on CPU.

    On CPU the cores are busy with the model itself; a worker only competes with it.
    """
    if requested == "auto":
        return min(4, max(0, (os.cpu_count() or 1) - 1)) if device == "cuda" else 0
    return int(requested)


def device_for_loading(device: str) -> str:
    """Where a process should load its model: its own GPU under DDP (LOCAL_RANK), else `device`."""
    if device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def is_main_process() -> bool:
    """Rank 0 under `torchrun`/`accelerate launch`; always true in a plain process. Only it writes results."""
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_all_processes() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


@dataclass(frozen=True)
class FitSettings:
    """How one training run goes; each caller fills it from its own config."""

    device: str  # resolved: "cpu" or "cuda"
    batch_size: int  # per device and per micro-step
    learning_rate: float
    epochs: int = 1
    max_steps: int | None = None  # when set, overrides epochs (the student's recipe counts steps)
    warmup_fraction: float = 0.05
    # None: linear decay to zero (LoRA rounds); a fraction: cosine decay to that share of the peak.
    lr_floor: float | None = None
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = False  # autocast compute; weights, gradients and optimizer state stay in their own dtype
    gradient_checkpointing: bool = False
    gradient_accumulation: int = 1
    group_by_length: bool = True
    dataloader_workers: int = 0
    log_every: int = 10  # steps per logged loss (each log is one host sync)
    seed: int = 0
    progress: str | None = "training"  # the progress bar's label; None: no bar


@dataclass
class FitResult:
    steps: int
    losses: list[float]  # mean training loss of each logging window
    seconds: float  # wall time of the training loop
    real_tokens: list[int] = field(default_factory=list)  # per micro-batch: attention-mask tokens
    padded_tokens: list[int] = field(default_factory=list)  # per micro-batch: rows x padded length

    @property
    def final_loss(self) -> float:
        """Mean loss over the last logging window (the last step is always logged)."""
        return self.losses[-1] if self.losses else float("nan")

    @property
    def padding_share(self) -> float:
        padded = sum(self.padded_tokens)
        return 1 - sum(self.real_tokens) / padded if padded else 0.0


class TrainingCollator:
    """`training_batch` as a Trainer data collator (a class, so loader workers can pickle it)."""

    def __init__(
        self, processor: Any, family: Family, demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS
    ) -> None:
        self.processor = processor
        self.family = family
        self.demonstrations = demonstrations

    def __call__(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return training_batch(self.processor, samples, self.demonstrations, family=self.family)


class TallyingTrainer(Trainer):
    """A plain Trainer that also counts real and padded tokens per micro-batch.

    Counts stay where the batch is (no host sync) until `token_counts` is read
    once, after training. The throughput benchmark uses this class for its
    plain baseline, so both sides are measured the same way.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._real: list[torch.Tensor] = []
        self._padded: list[int] = []

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        mask = inputs.get("attention_mask")
        if mask is not None:
            self._real.append(mask.sum())
            self._padded.append(mask.numel())
        return super().training_step(model, inputs, num_items_in_batch)

    def token_counts(self) -> tuple[list[int], list[int]]:
        real = torch.stack(self._real).tolist() if self._real else []
        return [int(n) for n in real], list(self._padded)


class _BucketingTrainer(TallyingTrainer):
    """Samples batches from precomputed lengths (bucketed) or uniformly, from its own seeded generator.

    Own generators (the sampler's and the loader's) keep the data order a
    function of the seed alone, whatever ran before in the process, and leave
    the global RNG to the Trainer's own `set_seed`.
    """

    def __init__(self, *args: Any, lengths: list[int] | None, sampler_seed: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lengths = lengths
        self._sampler_seed = sampler_seed

    def get_train_dataloader(self) -> Any:
        loader = super().get_train_dataloader()
        # Without a generator of its own, a DataLoader draws each epoch's worker base seed from the
        # global RNG. accelerate wraps the loader; the torch one iterates.
        getattr(loader, "base_dataloader", loader).generator = torch.Generator().manual_seed(self._sampler_seed)
        return loader

    def _get_train_sampler(self, train_dataset: Any = None) -> Sampler[int]:
        generator = torch.Generator().manual_seed(self._sampler_seed)
        if self._lengths is None:
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return RandomSampler(cast(Sized, dataset), generator=generator)
        # Trainer's own bucketing: random mega-batches of 50 batches, each sorted by length.
        per_step = self.args.train_batch_size * self.args.gradient_accumulation_steps
        return LengthGroupedSampler(per_step, lengths=self._lengths, generator=generator)


class _LogLastStep(TrainerCallback):
    """Logs the final step too, so the last loss window is never lost; collects the logged losses."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= state.max_steps:
            control.should_log = True
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


class _AnnounceSteps(TrainerCallback):
    """Each finished step to the run's live listener (`gaptune watch`, MLflow, spans), with the loss when logged."""

    def __init__(self, label: str) -> None:
        self.label = label

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        announce(TrainingStep(step=state.global_step, max_steps=state.max_steps, label=self.label))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            announce(TrainingStep(step=state.global_step, max_steps=state.max_steps, loss=float(logs["loss"]),
                                  label=self.label))


class _Bar(ProgressCallback):
    """The Trainer's tqdm bar, labelled, only on a terminal, without a printed line per log (losses are returned).

    Off a terminal (a log file, CI) tqdm would write a line per refresh, thousands
    per run; `disable=None` is tqdm's own "only on a TTY".
    """

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.training_bar = tqdm(total=state.max_steps, desc=self.label, dynamic_ncols=True, disable=None)
        self.current_step = 0

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None


def training_arguments(settings: FitSettings, output_dir: str) -> TrainingArguments:
    """The Trainer's arguments for `settings`; they set up accelerate's process state afresh for this run."""
    schedule: dict[str, Any] = (
        {"lr_scheduler_type": "linear"}
        if settings.lr_floor is None
        else {"lr_scheduler_type": "cosine_with_min_lr", "lr_scheduler_kwargs": {"min_lr_rate": settings.lr_floor}}
    )
    return TrainingArguments(
        output_dir=output_dir,
        use_cpu=settings.device == "cpu",
        bf16=settings.bf16,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        activation_checkpointing=settings.gradient_checkpointing,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps if settings.max_steps is not None else -1,
        warmup_steps=settings.warmup_fraction,  # a float below 1: a share of the total steps
        optim="adamw_torch_fused" if settings.device == "cuda" else "adamw_torch",
        logging_strategy="steps",
        logging_steps=settings.log_every,
        save_strategy="no",
        report_to=[],
        seed=settings.seed,
        # accelerate swaps a RandomSampler for its SeedableRandomSampler, seeded from data_seed or
        # else from the global RNG's initial seed: the data order must come from this run's seed alone.
        data_seed=settings.seed,
        dataloader_num_workers=settings.dataloader_workers,
        dataloader_pin_memory=settings.device == "cuda",
        dataloader_persistent_workers=settings.dataloader_workers > 0,
        remove_unused_columns=False,
        label_names=["labels"],
        disable_tqdm=True,  # fit adds its own quieter bar (see _Bar)
        **schedule,
    )


def fit(
    model: Any,
    processor: Any,
    samples: Sequence[Sample],
    settings: FitSettings,
    *,
    demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    family: Family | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> FitResult:
    """Train `model`'s trainable parameters on `samples` in place; returns losses, steps and token counts.

    The model must already sit on its device, in the dtype its weights should
    keep (fp32 trainable weights; a frozen base may be bf16). `family`
    defaults to the registry's entry for the model's type.
    """
    family = family or family_of(model)
    lengths = training_lengths(processor, samples, demonstrations, family=family) if settings.group_by_length else None
    log_last = _LogLastStep()
    with tempfile.TemporaryDirectory(prefix="gaptune-fit-") as scratch:
        trainer = _BucketingTrainer(
            model=model,
            args=training_arguments(settings, scratch),
            train_dataset=list(samples),
            data_collator=TrainingCollator(processor, family, demonstrations),
            callbacks=[log_last, *callbacks],
            lengths=lengths,
            sampler_seed=settings.seed,
        )
        trainer.remove_callback(PrinterCallback)
        if settings.progress is not None:
            trainer.add_callback(_Bar(settings.progress))
        if is_listened():
            trainer.add_callback(_AnnounceSteps(settings.progress or "training"))
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    real, padded = trainer.token_counts()
    model.eval()
    return FitResult(steps=trainer.state.global_step, losses=log_last.losses, seconds=seconds,
                     real_tokens=real, padded_tokens=padded)
