"""The family registry: known model types, overrides from trainer.family, one clear error for an unknown type."""

from __future__ import annotations

import pytest

from gaptune.data.errors import ConfigError
from gaptune.training.config import FamilyConfig
from gaptune.training.families import FAMILIES, resolve_family


def test_known_type_gives_its_entry_and_overrides_replace_single_fields() -> None:
    assert resolve_family("idefics3").connector_modules == FAMILIES["idefics3"].connector_modules
    changed = resolve_family("qwen2_vl", FamilyConfig(padding_side="right", connector_modules=r".*merger\.ln_q"))
    assert (changed.padding_side, changed.connector_modules) == ("right", r".*merger\.ln_q")
    assert changed.lora_modules == FAMILIES["qwen2_vl"].lora_modules and changed.end_of_turn == "<|im_end|>"


def test_model_type_override_reads_a_derivative_as_a_known_family() -> None:
    assert resolve_family("my_llava_variant", FamilyConfig(model_type="llava")) == FAMILIES["llava"]


def test_unknown_type_is_one_line_naming_the_type_and_the_keys() -> None:
    with pytest.raises(ConfigError) as raised:
        resolve_family("fancy_vlm")
    message = str(raised.value)
    assert "\n" not in message and "'fancy_vlm'" in message
    for key in ("trainer.family.model_type", "trainer.family.lora_modules", "trainer.family.connector_modules"):
        assert key in message


def test_unknown_type_described_by_its_modules_works() -> None:
    family = resolve_family("fancy_vlm", FamilyConfig(lora_modules=r".*lm\.q", connector_modules=r".*proj"))
    assert (family.name, family.lora_modules, family.padding_side, family.multi_image) == (
        "fancy_vlm", r".*lm\.q", "left", True)
