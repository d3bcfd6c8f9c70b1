"""Tiny random-weight checkpoints of each image-text family in the registry, built from configs (no hub).

Each recipe builds what a user's checkpoint of that family holds: the
family's real model class from a tiny config, its real processor (the PIL
image processors, never torchvision), a byte-level BPE tokenizer trained
locally on the built-in world's text with the family's special tokens, and a
chat template laid out as the family's own (turn markers, where images go,
what ends an answer). `save_pretrained` writes it, so gaptune loads it through
the Auto classes exactly as it would load a downloaded one.

The architecture matrix (tests/training/test_family_matrix.py) runs gaptune's
whole path on each; `python -m gaptune.training.supported_models` writes the
docs' table from the same checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer
from transformers import PreTrainedTokenizerFast

from gaptune.data.errors import ConfigError
from gaptune.data.world.scene import IMAGE_SIZE
from gaptune.data.world.world import MIX_VERSIONS
from gaptune.training.families import FAMILIES
from gaptune.training.tiny_student import world_text

VOCAB_SIZE = 600
HIDDEN = 64
LLAMA_TEXT: dict[str, Any] = {"hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048}
CLIP_VISION: dict[str, Any] = {"hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN, "num_hidden_layers": 1,
               "num_attention_heads": 4, "image_size": IMAGE_SIZE, "patch_size": 8}
ANYRES_GRID = [[IMAGE_SIZE, IMAGE_SIZE], [IMAGE_SIZE, 2 * IMAGE_SIZE]]  # LLaVA-NeXT's tile shapes, tiny
LLAMA_ROLES = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
SIGLIP_VISION: dict[str, Any] = {"hidden_size": HIDDEN, "intermediate_size": 2 * HIDDEN,
                 "num_hidden_layers": 1, "num_attention_heads": 4, "image_size": 32, "patch_size": 8}


@dataclass(frozen=True)
class TinyRecipe:
    """How to build one family's tiny checkpoint."""

    model_type: str
    special_tokens: list[str]  # besides the text, in id order after the BPE's own
    tokenizer_roles: dict[str, str]  # bos/eos/pad/unk token names -> token
    extra_special: dict[str, str]  # attributes the family's processor reads off the tokenizer (image_token, ...)
    chat_template: str
    processor: Callable[[PreTrainedTokenizerFast, str], Any]
    config: Callable[[PreTrainedTokenizerFast], Any]
    model_class: str


def _ids(tokenizer: PreTrainedTokenizerFast, *tokens: str) -> list[int]:
    ids = tokenizer.convert_tokens_to_ids(list(tokens))
    assert isinstance(ids, list)
    return ids


def _roles(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}


# --- LLaVA-1.5: CLIP tower, two-layer projector, Llama. The template of llava-hf's checkpoints: images
# first, an assistant turn closed by a space only (the registry's end of turn is then the tokenizer's </s>).
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _llava_processor(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    image_processor = transformers.CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return transformers.LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                       vision_feature_select_strategy="default", chat_template=template,
                                       num_additional_image_tokens=1)


def _llava_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    return transformers.LlavaConfig(
        vision_config=transformers.CLIPVisionConfig(**CLIP_VISION),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), **LLAMA_TEXT, **_roles(tokenizer)),
        image_token_index=_ids(tokenizer, "<image>")[0], vision_feature_select_strategy="default",
        vision_feature_layer=-1, image_seq_length=(IMAGE_SIZE // 8) ** 2)


# --- LLaVA-NeXT (the Mistral build): any-resolution tiles and a newline token per row; [INST] turns.
LLAVA_NEXT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ '[INST] ' }}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}{{ '<image>\n' }}{%- else -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{{ ' [/INST]' }}"
    "{%- else -%}{{ ' ' + message['content'][0]['text'] + '</s>' }}"
    "{%- endif -%}{%- endfor -%}"
)


def _llava_next_processor(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    image_processor = transformers.LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=ANYRES_GRID)
    return transformers.LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                                           vision_feature_select_strategy="default", chat_template=template,
                                           num_additional_image_tokens=1)


def _llava_next_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    return transformers.LlavaNextConfig(
        vision_config=transformers.CLIPVisionConfig(**CLIP_VISION),
        text_config=transformers.MistralConfig(vocab_size=len(tokenizer), **LLAMA_TEXT, **_roles(tokenizer)),
        image_token_index=_ids(tokenizer, "<image>")[0], vision_feature_select_strategy="default",
        vision_feature_layer=-1, image_grid_pinpoints=ANYRES_GRID,
        image_seq_length=(IMAGE_SIZE // 8) ** 2)


# The turns of Idefics2 and Idefics3: "User:"/"Assistant:", each closed by <end_of_utterance>.
IDEFICS2_TEMPLATE = (
    "{%- for message in messages -%}{{ message['role'] | capitalize }}"
    "{%- if message['content'][0]['type'] == 'image' -%}{{ ':' }}{%- else -%}{{ ': ' }}{%- endif -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- else -%}<image>{%- endif -%}{%- endfor -%}{{ '<end_of_utterance>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)


# --- Idefics3 (SmolVLM's base): SigLIP-like tower, pixel-shuffle connector, Llama; "User:"/"Assistant:" turns.
IDEFICS3_TEMPLATE = "<|im_start|>" + IDEFICS2_TEMPLATE


def _idefics3_processor(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    image_processor = transformers.Idefics3ImageProcessorPil(
        size={"longest_edge": 32}, max_image_size={"longest_edge": 32}, do_image_splitting=False)
    return transformers.Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                          chat_template=template)


def _idefics3_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    return transformers.Idefics3Config(
        vision_config=transformers.Idefics3VisionConfig(**SIGLIP_VISION),
        text_config=transformers.LlamaConfig(vocab_size=len(tokenizer), **LLAMA_TEXT, **_roles(tokenizer)),
        image_token_id=_ids(tokenizer, "<image>")[0], scale_factor=2)


# --- Idefics2: SigLIP-like tower, a perceiver resampler to a fixed number of latents, Mistral; the same turns.
def _idefics2_processor(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    image_processor = transformers.Idefics2ImageProcessorPil(
        size={"shortest_edge": 32, "longest_edge": 32}, do_image_splitting=False)
    return transformers.Idefics2Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4,
                                          chat_template=template)


def _idefics2_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    perceiver = {"hidden_size": HIDDEN, "resampler_n_latents": 4, "resampler_depth": 1, "resampler_n_heads": 4,
                 "resampler_head_dim": 16, "num_key_value_heads": 2}
    return transformers.Idefics2Config(
        vision_config=SIGLIP_VISION, perceiver_config=perceiver,
        text_config=transformers.MistralConfig(vocab_size=len(tokenizer), **LLAMA_TEXT, **_roles(tokenizer)).to_dict(),
        image_token_id=_ids(tokenizer, "<image>")[0])


# --- Gemma 3: SigLIP tower, pooled soft tokens between <start_of_image>/<end_of_image>; user/model turns.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}{%- set state = namespace(system='') -%}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{%- set state.system = message['content'][0]['text'] + '\n\n' -%}"
    "{%- else -%}{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else 'user') + '\n' }}"
    "{%- if message['role'] == 'user' -%}{{ state.system }}{%- set state.system = '' -%}{%- endif -%}"
    "{%- for part in message['content'] -%}{%- if part['type'] == 'image' -%}<start_of_image>"
    "{%- else -%}{{ part['text'] }}{%- endif -%}{%- endfor -%}{{ '<end_of_turn>\n' }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _gemma3_processor(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    image_processor = transformers.Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    return transformers.Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template,
                                        image_seq_length=4)


def _gemma3_config(tokenizer: PreTrainedTokenizerFast) -> Any:
    text = transformers.Gemma3TextConfig(vocab_size=len(tokenizer), head_dim=16, sliding_window=64,
                                          **LLAMA_TEXT, **_roles(tokenizer))
    boi, eoi, image = _ids(tokenizer, "<start_of_image>", "<end_of_image>", "<image_soft_token>")
    return transformers.Gemma3Config(text_config=text, vision_config=transformers.SiglipVisionConfig(
        **SIGLIP_VISION), mm_tokens_per_image=4,
        boi_token_index=boi, eoi_token_index=eoi, image_token_index=image)


RECIPES: dict[str, TinyRecipe] = {
    "llava": TinyRecipe(
        "llava", ["<image>"], LLAMA_ROLES,
        {"image_token": "<image>"}, LLAVA_TEMPLATE, _llava_processor, _llava_config, "LlavaForConditionalGeneration"),
    "llava_next": TinyRecipe(
        "llava_next", ["<image>"],
        LLAMA_ROLES,
        {"image_token": "<image>"}, LLAVA_NEXT_TEMPLATE, _llava_next_processor, _llava_next_config,
        "LlavaNextForConditionalGeneration"),
    "idefics3": TinyRecipe(
        "idefics3", ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>", "<|im_start|>"],
        {"bos_token": "<|im_start|>", "eos_token": "<end_of_utterance>", "pad_token": "<pad>", "unk_token": "<unk>"},
        {"image_token": "<image>"}, IDEFICS3_TEMPLATE, _idefics3_processor, _idefics3_config,
        "Idefics3ForConditionalGeneration"),
    "idefics2": TinyRecipe(
        "idefics2", ["<image>", "<fake_token_around_image>", "<end_of_utterance>"],
        LLAMA_ROLES,
        {"image_token": "<image>", "image_boundary_token": "<fake_token_around_image>",
         "end_of_utterance_token": "<end_of_utterance>"}, IDEFICS2_TEMPLATE, _idefics2_processor, _idefics2_config,
        "Idefics2ForConditionalGeneration"),
    "gemma3": TinyRecipe(
        "gemma3", ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>", "<end_of_turn>"],
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>"},
        {"image_token": "<image_soft_token>", "boi_token": "<start_of_image>", "eoi_token": "<end_of_image>"},
        GEMMA3_TEMPLATE, _gemma3_processor, _gemma3_config, "Gemma3ForConditionalGeneration"),
}


# Registry entries with no tiny checkpoint here, and why (shown in the supported-models table).
NOT_BUILT: dict[str, str] = {
    "qwen2_vl": "its processor requires a video processor, which transformers provides only with torchvision "
                "(not installed in gaptune's environment)",
    "qwen2_5_vl": "as Qwen2-VL: the processor requires a video processor, which needs torchvision",
}

# Their model classes build without a processor: tiny configs on which the matrix checks that the
# registry's LoRA and connector targets fit the real modules and train (M-RoPE inputs made by hand).
QWEN_TEXT: dict[str, Any] = {**{k: v for k, v in LLAMA_TEXT.items() if k != "max_position_embeddings"},
                             "vocab_size": VOCAB_SIZE, "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]}}
QWEN_TOKENS: dict[str, Any] = {"image_token_id": VOCAB_SIZE - 4, "video_token_id": VOCAB_SIZE - 3,
               "vision_start_token_id": VOCAB_SIZE - 2, "vision_end_token_id": VOCAB_SIZE - 1}
QWEN_PATCHES: dict[str, Any] = {"patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_heads": 4, "depth": 1}
MODEL_ONLY: dict[str, tuple[str, Callable[[], Any]]] = {  # model type -> (model class, its tiny config)
    "qwen2_vl": ("Qwen2VLForConditionalGeneration", lambda: transformers.Qwen2VLConfig(
        text_config=QWEN_TEXT, vision_config={**QWEN_PATCHES, "embed_dim": 32, "hidden_size": HIDDEN, "mlp_ratio": 2},
        **QWEN_TOKENS)),
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", lambda: transformers.Qwen2_5_VLConfig(
        text_config=QWEN_TEXT, vision_config={**QWEN_PATCHES, "hidden_size": 32, "out_hidden_size": HIDDEN,
                                              "intermediate_size": HIDDEN, "fullatt_block_indexes": [0]},
        **QWEN_TOKENS)),
}


def build_tiny_model(model_type: str, *, seed: int = 0) -> Any:
    """A random-weight model of a family in MODEL_ONLY (no processor, nothing saved)."""
    model_class, config = MODEL_ONLY[model_type]
    torch.manual_seed(seed)
    return getattr(transformers, model_class)(config())


def build_tokenizer(recipe: TinyRecipe) -> PreTrainedTokenizerFast:
    roles = list(dict.fromkeys(recipe.tokenizer_roles.values()))
    special = list(dict.fromkeys([*roles, *recipe.special_tokens]))
    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(world_text(0, MIX_VERSIONS["counting-spatial-rare"]), vocab_size=VOCAB_SIZE,
                            min_frequency=2, special_tokens=special, show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, **recipe.tokenizer_roles,
                                   extra_special_tokens=dict(recipe.extra_special), padding_side="left")


def build_tiny_family(model_type: str, out_dir: Path, *, seed: int = 0) -> Path:
    """Write a tiny random-weight checkpoint (model, processor, tokenizer, chat template) of `model_type`."""
    if model_type in NOT_BUILT:
        raise ConfigError(f"no tiny {model_type} checkpoint can be built here: {NOT_BUILT[model_type]}")
    if model_type not in RECIPES:
        raise ConfigError(f"no tiny recipe for model type {model_type!r} (known: {', '.join(sorted(RECIPES))})")
    recipe = RECIPES[model_type]
    tokenizer = build_tokenizer(recipe)
    processor = recipe.processor(tokenizer, recipe.chat_template)
    torch.manual_seed(seed)
    model = getattr(transformers, recipe.model_class)(recipe.config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    # as the family's own checkpoints do: generation stops at the end of an answer turn too
    end_of_turn = FAMILIES[model_type].end_of_turn
    stops = [tokenizer.eos_token_id, *(_ids(tokenizer, end_of_turn) if end_of_turn else [])]
    model.generation_config.eos_token_id = sorted(set(stops)) if len(set(stops)) > 1 else stops[0]
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
