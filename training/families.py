"""What gaptune must know about each image-text model family, keyed by the checkpoint's `config.model_type`.

Hugging Face's Auto classes load any family alike, but a few things differ
between them and cannot be read off a checkpoint reliably: which modules a
LoRA adapter should target in the language model, what the vision-language
connector is called (the `connector` candidate trains it alone), which side
batched generation pads on, whether one prompt may carry several images (the
`in-context` candidate puts demonstrations' images before the question), and
the text that closes an answer (LLaVA-1.5's template ends an assistant turn
with a space, so the tokenizer's end-of-sequence is appended instead).

Only the `llava` entry has run end to end here (the tiny student); the
others are written from each family's module layout in transformers 5.24
and await the architecture matrix (issue 18). A family that is not here gets
one error naming its model type and the `trainer.family.*` keys that
describe it; those keys also override any field of a known family.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gaptune.data.errors import ConfigError
from gaptune.training.config import FamilyConfig

# The attention and MLP projections of Llama-, Qwen2- and Gemma-style decoders.
_DECODER = r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


class Family(BaseModel):
    """One family's entry; `name` is what the supported-models table shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    lora_modules: str  # regex over module names: the language model's projections
    connector_modules: str | None = None  # regex over module names: the vision-to-text projector's layers
    # the projector's bare weight matrices, for families whose connector is a Parameter rather than a layer
    # (PEFT's target_parameters)
    connector_parameters: tuple[str, ...] = ()
    padding_side: Literal["left", "right"] = "left"  # for batched generation (decoder-only models pad left)
    multi_image: bool = True  # several images in one prompt: the in-context candidate needs it
    end_of_turn: str | None = None  # the text that ends an answer; None: the tokenizer's end-of-sequence


FAMILIES: dict[str, Family] = {
    "llava": Family(
        name="LLaVA-1.5",
        lora_modules=rf".*language_model.*\.{_DECODER}",
        connector_modules=r".*multi_modal_projector\.linear_\d+",
    ),
    "llava_next": Family(
        name="LLaVA-NeXT",
        lora_modules=rf".*language_model.*\.{_DECODER}",
        connector_modules=r".*multi_modal_projector\.linear_\d+",
    ),
    "qwen2_vl": Family(
        name="Qwen2-VL",
        lora_modules=rf".*language_model.*\.{_DECODER}",
        connector_modules=r".*visual\.merger\.mlp\.[02]",  # Linear, GELU, Linear
        end_of_turn="<|im_end|>",
    ),
    "qwen2_5_vl": Family(
        name="Qwen2.5-VL",
        lora_modules=rf".*language_model.*\.{_DECODER}",
        connector_modules=r".*visual\.merger\.mlp\.[02]",  # Linear, GELU, Linear
        end_of_turn="<|im_end|>",
    ),
    "idefics3": Family(
        name="Idefics3",
        lora_modules=rf".*text_model.*\.{_DECODER}",
        connector_modules=r".*connector\.modality_projection\.proj",
        end_of_turn="<end_of_utterance>",
    ),
    "idefics2": Family(
        name="Idefics2",
        lora_modules=rf".*text_model.*\.{_DECODER}",
        connector_modules=r".*connector\.modality_projection\.(gate_proj|up_proj|down_proj)",
        end_of_turn="<end_of_utterance>",
    ),
    "gemma3": Family(
        name="Gemma 3",
        lora_modules=rf".*language_model.*\.{_DECODER}",
        connector_modules=None,
        connector_parameters=("multi_modal_projector.mm_input_projection_weight",),
        end_of_turn="<end_of_turn>",
    ),
}


def supported_types() -> list[str]:
    return sorted(FAMILIES)


def _describe_keys() -> str:
    return ", ".join(f"trainer.family.{key}" for key in ("lora_modules", "connector_modules", "connector_parameters",
                                                       "padding_side", "multi_image", "end_of_turn"))


def resolve_family(model_type: str, overrides: FamilyConfig | None = None) -> Family:
    """The registry's entry for `model_type` with the config's overrides applied.

    A model type the registry does not know works once the config names the
    modules to tune (`trainer.family.lora_modules` and `connector_modules`);
    the other fields then keep their defaults. `trainer.family.model_type`
    reads the checkpoint as another registered family (a derivative
    architecture under its own name).
    """
    overrides = overrides or FamilyConfig()
    looked_up = overrides.model_type or model_type
    given = overrides.model_dump(exclude={"model_type"}, exclude_none=True)
    known = FAMILIES.get(looked_up)
    if known is None:
        if "lora_modules" not in given or not {"connector_modules", "connector_parameters"} & set(given):
            raise ConfigError(
                f"student model type {looked_up!r} is not in gaptune's family registry (known: "
                f"{', '.join(supported_types())}); set trainer.family.model_type to a known family it matches, or "
                f"describe it with {_describe_keys()} (lora_modules and one of the connector keys are required)"
            )
        return Family(name=looked_up, **given)
    return Family.model_validate({**known.model_dump(), **given})


def family_of(model: Any, overrides: FamilyConfig | None = None) -> Family:
    """The family of a loaded model (a PEFT wrapper reports its base model's config)."""
    return resolve_family(model.config.model_type, overrides)
