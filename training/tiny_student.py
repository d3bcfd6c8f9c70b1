"""The built-in tiny student: a real LLaVA (CLIP vision tower + Llama) small enough for 2 CPU cores.

It gets its own byte-level BPE tokenizer (every world word is one token, yet
any text still encodes), its own processor and chat template, and is
pretrained on the world's skewed mix so its skills are uneven: strong where
the mix is rich, weak where it is rare (counting, spatial relations). The
result is written with `save_pretrained` and read back through the Auto
classes like any user checkpoint.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import torch
from pydantic import BaseModel
from safetensors.torch import load_file
from tokenizers import ByteLevelBPETokenizer
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from gaptune.data.atomic import publish_directory
from gaptune.data.world.families import generate
from gaptune.data.world.scene import CELL, IMAGE_SIZE
from gaptune.data.world.world import MIX_VERSIONS, WORLD_FAMILIES, pretraining_mix
from gaptune.training.config import TinyStudentConfig
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
from gaptune.training.prompting import INSTRUCTION

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN]

# User turns render as "question <image> =>", the answer follows after a space:
# the image tokens sit right before the answer.
# System messages (the instruction) are dropped: the tiny student learns the
# format from its pretraining data, not from instructions.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ ' ' + part['text'] }}{%- endif -%}{%- endfor -%}"
    "{{ ' ' }}{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}<image>{%- endif -%}{%- endfor -%}"
    "{{ ' =>' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ ' ' + message['content'][0]['text'] + '</s>' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
)






def world_text(seed: int, version: str) -> list[str]:
    """Questions and rationales of every family of the student's world version: what the tokenizer learns its merges from."""
    rng = random.Random(f"tokenizer/{seed}")
    texts = [INSTRUCTION]
    for family in WORLD_FAMILIES[version]:
        for _ in range(300):
            item = generate(family, rng)
            steps = "; ".join(text for text, _ in item.steps)
            options = f" Options: {', '.join(item.choices)}." if item.choices else ""
            texts.append(f" {item.question}{options} => {steps}; answer: {item.answer}")
    return texts


def build_tokenizer(config: TinyStudentConfig) -> PreTrainedTokenizerFast:
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(world_text(config.world_seed, MIX_VERSIONS[config.mix]), vocab_size=config.vocab_size,
                            min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN}, padding_side="left",
    )
    return tokenizer


def build_processor(tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True, do_resize=True,
    )
    return LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=CELL,
        vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN, num_additional_image_tokens=1,
    )


def build_model(config: TinyStudentConfig, tokenizer: PreTrainedTokenizerFast) -> LlavaForConditionalGeneration:
    """A randomly initialised LLaVA of the tiny size (also what tests build from a config)."""
    torch.manual_seed(config.seed)
    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden, intermediate_size=config.vision_hidden * 2,
        num_hidden_layers=config.vision_layers, num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=CELL,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.text_hidden, intermediate_size=config.text_hidden * 4,
        num_hidden_layers=config.text_layers, num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    llava = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.image_token_id,
        image_seq_length=(IMAGE_SIZE // CELL) ** 2, vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    model = LlavaForConditionalGeneration(llava)
    # CLIP initialises position embeddings at std 0.02, far below the patch
    # content; the language model (RoPE, relative positions) then cannot tell
    # which patch is "top left". Unit-scale position embeddings make each
    # cell's token say where it is, so locating objects is learned early.
    with torch.no_grad():
        model.model.vision_tower.embeddings.position_embedding.weight.normal_(0.0, 1.0)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def pretrain_settings(config: TinyStudentConfig, device: str) -> FitSettings:
    """The recipe on the shared training path: warmup 5%, cosine to a 5% floor, weight decay 0.01, clip 1.0."""
    return FitSettings(
        device=device, batch_size=config.batch_size, learning_rate=config.learning_rate, max_steps=config.steps,
        warmup_fraction=0.05, lr_floor=0.05, weight_decay=0.01, max_grad_norm=1.0,
        bf16=resolve_bf16("auto", device), group_by_length=False,
        dataloader_workers=resolve_workers("auto", device), log_every=50, seed=config.seed,
        progress="pretraining tiny student",
    )


def pretrain(model: LlavaForConditionalGeneration, processor: LlavaProcessor, config: TinyStudentConfig) -> list[float]:
    """Train every weight on the skewed pretraining mix; returns the loss curve (one value per 50 steps)."""
    samples = pretraining_mix(config.world_seed, config.pretrain_samples, mix=config.mix)
    device = resolve_device(config.device)
    model.to(device_for_loading(device))  # type: ignore[arg-type]  # transformers' wrapper typing
    return fit(model, processor, samples, pretrain_settings(config, device)).losses


# Students shipped with gaptune, built by this recipe (named by its fingerprint): the
# embedded default starts without a 14-minute build (2 CPU cores). `gaptune world student
# --verify` rebuilds one from the recipe and compares.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"


def tiny_student_path(cache_dir: Path, config: TinyStudentConfig) -> Path:
    return cache_dir / "students" / f"tiny-llava-{config.fingerprint()}"


def shipped_student_path(config: TinyStudentConfig) -> Path | None:
    """The shipped build of `config`'s recipe, when gaptune ships one."""
    path = SHIPPED_DIR / f"tiny-llava-{config.fingerprint()}"
    return path if (path / "config.json").is_file() else None


def build_tiny_student(cache_dir: Path, config: TinyStudentConfig | None = None, *, force: bool = False) -> Path:
    """The pretrained tiny student's directory: from the cache, else the shipped build, else built here.

    `force` always builds from the recipe. Written to a temporary directory
    and renamed into place, so a killed build never leaves a half-written
    student behind.
    """
    config = config or TinyStudentConfig()
    target = tiny_student_path(cache_dir, config)
    if (target / "config.json").is_file() and not force:
        return target
    shipped = shipped_student_path(config)
    if shipped is not None and not force:
        with publish_directory(target) as staging:
            shutil.copytree(shipped, staging, dirs_exist_ok=True)
        return target
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    tokenizer = build_tokenizer(config)
    processor = build_processor(tokenizer)
    model = build_model(config, tokenizer)
    curve = pretrain(model, processor, config)
    if is_main_process():
        with publish_directory(target) as staging:
            model.save_pretrained(staging)
            processor.save_pretrained(staging)
            (staging / "gaptune_student.json").write_text(
                json.dumps({"config": config.model_dump(), "loss_curve": curve,
                            "build_s": round(time.perf_counter() - started, 1)}, indent=2))
    wait_for_all_processes()
    return target


class StudentCheck(BaseModel):
    """A rebuild from the recipe against the shipped build: equal weights, or how far apart."""

    shipped: str
    rebuilt: str
    max_weight_diff: float
    final_loss_shipped: float
    final_loss_rebuilt: float

    @property
    def identical(self) -> bool:
        return self.max_weight_diff == 0.0

    @property
    def agrees(self) -> bool:
        """Bitwise equal, or (another CPU's arithmetic) the same final pretraining loss within 10%."""
        return self.identical or abs(self.final_loss_rebuilt - self.final_loss_shipped) <= 0.1 * self.final_loss_shipped


def verify_shipped(config: TinyStudentConfig, scratch: Path) -> StudentCheck:
    """Rebuild `config`'s shipped student from its recipe under `scratch` and compare the two."""
    shipped = shipped_student_path(config)
    if shipped is None:
        raise ValueError(f"no shipped student for recipe {config.fingerprint()} (shipped: {SHIPPED_DIR})")
    rebuilt = build_tiny_student(scratch, config, force=True)
    ours, theirs = load_file(shipped / "model.safetensors"), load_file(rebuilt / "model.safetensors")
    diff = max((ours[name].float() - theirs[name].float()).abs().max().item() for name in ours)

    def final_loss(path: Path) -> float:
        return float(json.loads((path / "gaptune_student.json").read_text())["loss_curve"][-1])

    return StudentCheck(shipped=str(shipped), rebuilt=str(rebuilt), max_weight_diff=diff,
                        final_loss_shipped=final_loss(shipped), final_loss_rebuilt=final_loss(rebuilt))


__all__ = ["StudentCheck", "TinyStudentConfig", "build_model", "build_processor", "build_tiny_student", "build_tokenizer",
           "verify_shipped"]
