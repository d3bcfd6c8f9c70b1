"""Training throughput: gaptune's training path against a plain transformers Trainer + PEFT, in one run.

Builds an image-text LLaVA with random weights from a config, attaches LoRA
the way `train_candidate` does, and trains it on the world's pool samples
twice, same model, data, batch and steps:

- ours: `gaptune.training.fit` with the settings `train_candidate` derives
  from a TrainerConfig (length bucketing, bf16 autocast on GPU, fp32 adapter,
  fused AdamW on CUDA, gradient checkpointing when asked);
- plain: transformers' Trainer + PEFT as its documentation shows it (bf16
  autocast, fused AdamW on CUDA, random batches), with the same collator.

It prints real (non-padding) tokens/s, MFU, peak memory, padding share and
the ratio ours/plain, then each candidate kind on our path (lora, connector,
in-context): trainable share, tokens/s, peak memory.

MFU counts 4 * P_base FLOPs per real token: forward (2P) plus the backward
pass to activations (2P); frozen weights get no weight gradients. P_base is
the language model's parameter count without its token embedding; the
vision tower, the projector, attention scores and the adapter's own FLOPs
are left out, so MFU slightly understates the work done.

Sizes: `tiny` is the tiny student's shape (seconds on a CPU); `7b` is a
Llama-7B-shaped language model (hidden 4096, 32 layers, 32 heads,
intermediate 11008, vocab 32000) with a CLIP ViT-L/14-336-shaped vision tower
(576 image tokens an image), bf16 base weights on GPU.

Usage: python benchmarks/train_throughput.py --size tiny|7b [--steps 30] [--warmup 5] [--batch 32]
       [--kind-steps 10] [--kinds lora,connector,in-context] [--gradient-checkpointing|--no-gradient-checkpointing]
       [--peak-tflops 989] [--json PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PrinterCallback,
    TrainerCallback,
    TrainingArguments,
)

from gaptune.data.world.world import pool
from gaptune.training.config import CandidateKind, TrainerConfig
from gaptune.training.families import family_of
from gaptune.training.fit import TallyingTrainer, TrainingCollator, fit, resolve_device, resolve_workers
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.lora_trainer import attach_adapter, fit_settings
from gaptune.training.tiny_student import (
    CHAT_TEMPLATE,
    IMAGE_TOKEN,
    TinyStudentConfig,
    build_model,
    build_processor,
    build_tokenizer,
)

KINDS = ("lora", "connector", "in-context")


def build(size: str, device: str) -> tuple[Any, Any]:
    """A random-weight LLaVA of `size` on `device` and its processor (the tiny student's tokenizer)."""
    tokenizer = build_tokenizer(TinyStudentConfig())
    if size == "tiny":
        return build_model(TinyStudentConfig(), tokenizer).to(device), build_processor(tokenizer)  # type: ignore[arg-type]
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}),
        tokenizer=tokenizer, patch_size=14, vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE, image_token=IMAGE_TOKEN, num_additional_image_tokens=1,
    )
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                              image_size=336, patch_size=14, projection_dim=768)
    text = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text,
                         image_token_index=tokenizer.image_token_id, image_seq_length=576,
                         vision_feature_layer=-2, vision_feature_select_strategy="default")
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):  # initialise on the GPU itself: 7B random weights on a CPU take minutes
        model = LlavaForConditionalGeneration._from_config(config, dtype=dtype)
    return model, processor


def base_parameters(model: Any) -> int:
    """P_base: the language model's parameters without its token embedding (lm_head included)."""
    language = model.model.language_model
    embedding = language.get_input_embeddings().weight.numel()
    return sum(p.numel() for p in language.parameters()) - embedding + model.lm_head.weight.numel()


class _Clock(TrainerCallback):
    """Wall time from the end of step `warmup` to the end of training, synchronised with the GPU twice only."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.started = self.seconds = 0.0

    def _now(self) -> float:
        if self.device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.warmup == 0:
            self.started = self._now()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.warmup and self.warmup > 0:
            self.started = self._now()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seconds = self._now() - self.started


def _peak_memory(device: str) -> float | None:
    """GiB: the GPU's peak allocation for this run, or the process's peak RSS so far on CPU."""
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def _measure(real: list[int], padded: list[int], clock: _Clock, skip: int, p_base: int, peak_flops: float,
             device: str) -> dict[str, Any]:
    window_real, window_padded = sum(real[skip:]), sum(padded[skip:])
    tokens_per_s = window_real / clock.seconds if clock.seconds > 0 else float("nan")
    return {
        "tokens_per_s": tokens_per_s,
        "mfu": 4 * p_base * tokens_per_s / peak_flops,
        "peak_memory_gib": _peak_memory(device),
        "padding_share": 1 - window_real / window_padded if window_padded else 0.0,
        "seconds": clock.seconds,
        "real_tokens": window_real,
    }


def _reset_memory(device: str) -> None:
    gc.collect()  # the previous run's trainer, optimizer state and loader workers
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def run_ours(model: Any, processor: Any, samples: list, kind: CandidateKind, args: argparse.Namespace, device: str,
             p_base: int) -> dict[str, Any]:
    """One candidate of `kind` through gaptune's path (`fit` with train_candidate's settings)."""
    config = _trainer_config(args)
    torch.manual_seed(args.seed)
    peft_model = attach_adapter(model, kind, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    share = trainable / sum(p.numel() for p in peft_model.parameters())
    warmup, steps = (args.warmup, args.steps) if kind == "lora" else (min(args.warmup, 2), args.kind_steps)
    settings = dataclasses.replace(fit_settings(config, device, args.seed), max_steps=warmup + steps,
                                   progress=None)
    demonstrations = pick_demonstrations(samples, samples, k=config.in_context_k, seed=args.seed) if kind == "in-context" else {}
    clock = _Clock(warmup, device)
    _reset_memory(device)
    result = fit(peft_model, processor, samples, settings, demonstrations=demonstrations, callbacks=[clock])
    measured = _measure(result.real_tokens, result.padded_tokens, clock, warmup * settings.gradient_accumulation,
                        p_base, args.peak_tflops * 1e12, device)
    peft_model.unload()  # the same base serves the next run
    return {"kind": kind, "trainable_share": share, "steps": steps, **measured}


def run_plain(model: Any, processor: Any, samples: list, args: argparse.Namespace, device: str,
              p_base: int) -> dict[str, Any]:
    """The baseline: transformers' Trainer + PEFT, random batches, bf16 autocast, fused AdamW on CUDA."""
    config = _trainer_config(args)
    torch.manual_seed(args.seed)
    peft_model = get_peft_model(model, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha,
                                                   target_modules=family_of(model).lora_modules, bias="none"))
    clock = _Clock(args.warmup, device)
    with tempfile.TemporaryDirectory() as scratch:
        training_args = TrainingArguments(
            output_dir=scratch, use_cpu=device == "cpu", bf16=device == "cuda",
            per_device_train_batch_size=args.batch, max_steps=args.warmup + args.steps,
            learning_rate=config.learning_rate, lr_scheduler_type="linear", warmup_steps=config.warmup_fraction,
            optim="adamw_torch_fused" if device == "cuda" else "adamw_torch",
            activation_checkpointing=args.gradient_checkpointing,
            dataloader_num_workers=resolve_workers("auto", device), dataloader_pin_memory=device == "cuda",
            logging_steps=10, save_strategy="no", report_to=[], remove_unused_columns=False,
            label_names=["labels"], seed=args.seed, disable_tqdm=True,
        )
        trainer = TallyingTrainer(model=peft_model, args=training_args, train_dataset=samples,
                                  data_collator=TrainingCollator(processor, family_of(model)), callbacks=[clock])
        trainer.remove_callback(PrinterCallback)
        _reset_memory(device)
        trainer.train()
    real, padded = trainer.token_counts()
    measured = _measure(real, padded, clock, args.warmup, p_base, args.peak_tflops * 1e12, device)
    peft_model.unload()
    return {"steps": args.steps, **measured}


def _trainer_config(args: argparse.Namespace) -> TrainerConfig:
    return TrainerConfig(batch_size=args.batch, device=args.device, gradient_checkpointing=args.gradient_checkpointing,
                         base_dtype="bfloat16" if args.size == "7b" else "float32", group_by_length=args.group_by_length)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    model, processor = build(args.size, device)
    model.requires_grad_(False)
    p_base = base_parameters(model)
    samples = list(pool(0, max(args.batch * (args.warmup + max(args.steps, args.kind_steps)), 64)))
    # The same base serves every run; each attaches its own adapter and removes it afterwards.
    plain = run_plain(model, processor, samples, args, device, p_base)
    kinds = [run_ours(model, processor, samples, kind, args, device, p_base) for kind in args.kinds]
    ours = next((k for k in kinds if k["kind"] == "lora"), None)
    if ours is None:
        ours = run_ours(model, processor, samples, "lora", args, device, p_base)
    return {
        "size": args.size, "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
        "gradient_checkpointing": args.gradient_checkpointing, "p_base": p_base,
        "peak_tflops": args.peak_tflops, "mfu_formula": "4 * P_base * real tokens/s / peak FLOP/s",
        "ours": ours, "plain": plain,
        "ratio_tokens_per_s": ours["tokens_per_s"] / plain["tokens_per_s"] if plain["tokens_per_s"] else float("nan"),
        "kinds": kinds,
    }


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} GiB"


def markdown(result: dict[str, Any]) -> str:
    memory = "peak GPU memory" if result["device"] == "cuda" else "process peak RSS"
    lines = [
        f"size {result['size']} on {result['gpu'] or result['device']}: batch {result['batch']}, "
        f"{result['steps']} timed steps after {result['warmup']} warm-up, gradient checkpointing "
        f"{'on' if result['gradient_checkpointing'] else 'off'}; P_base {result['p_base'] / 1e9:.3f}B; "
        f"MFU = {result['mfu_formula']}, peak {result['peak_tflops']:g} TFLOP/s",
        "",
        f"| path | real tokens/s | MFU | {memory} | padding share |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, row in (("gaptune fit (ours)", result["ours"]), ("plain Trainer + PEFT", result["plain"])):
        lines.append(f"| {name} | {row['tokens_per_s']:,.0f} | {100 * row['mfu']:.3g}% | {_gib(row['peak_memory_gib'])} "
                     f"| {row['padding_share']:.1%} |")
    lines += [f"\nratio ours/plain (real tokens/s): {result['ratio_tokens_per_s']:.2f}x", "",
              f"| candidate | trainable share | real tokens/s | {memory} | padding share |",
              "|---|---:|---:|---:|---:|"]
    for row in result["kinds"]:
        lines.append(f"| {row['kind']} | {row['trainable_share']:.4%} | {row['tokens_per_s']:,.0f} "
                     f"| {_gib(row['peak_memory_gib'])} | {row['padding_share']:.1%} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "7b"), default="tiny")
    parser.add_argument("--steps", type=int, default=30, help="timed steps of the ours/plain comparison")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--kind-steps", type=int, default=10, help="timed steps of the connector and in-context runs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--kinds", type=lambda text: [k for k in text.split(",") if k], default=list(KINDS))
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                        help="default: on for 7b (a batch of 32 at 576 tokens an image needs it), off for tiny")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--group-by-length", action=argparse.BooleanOptionalAction, default=True,
                        help="length-bucketed batches on our path (trainer.group_by_length; off in the loop's default)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100/H200 SXM: 989)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"--kinds: unknown {', '.join(unknown)}; expected a comma list of {', '.join(KINDS)}")
    if args.gradient_checkpointing is None:
        args.gradient_checkpointing = args.size == "7b"
    if min(args.steps, args.kind_steps, args.batch) < 1 or args.warmup < 0:
        parser.error("--steps, --kind-steps and --batch must be at least 1, --warmup at least 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    result = run(args)
    print(markdown(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
