"""The kinds of candidate adapter a round can train, and what each one means for training, evaluation and serving.

A kind is a LoRA on some modules of the student (`modules_key` names the
trainer config field holding their pattern), optionally trained and
evaluated with in-context demonstrations before each example (MMICT), and
servable when a vLLM server can apply it (one LoRA on the language model).
The trainer, the served student and the config check read these fields
instead of comparing kind names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class CandidateKindSpec:
    name: str
    modules_key: Literal["lora_modules", "connector_modules"]
    demonstrations: bool
    servable: bool


CANDIDATE_KINDS: dict[str, CandidateKindSpec] = {
    "lora": CandidateKindSpec("lora", "lora_modules", demonstrations=False, servable=True),
    # Cheetah/VPG-C: a tiny module between the vision tower and the language model, ~0.1% of the parameters.
    "connector": CandidateKindSpec("connector", "connector_modules", demonstrations=False, servable=False),
    "in-context": CandidateKindSpec("in-context", "lora_modules", demonstrations=True, servable=True),
}


def known_kind(name: str) -> str:
    """A candidate kind's name, checked when a config is read."""
    if name not in CANDIDATE_KINDS:
        raise ValueError(f"unknown candidate kind {name!r}; the kinds are {', '.join(CANDIDATE_KINDS)}")
    return name


def kind_spec(name: str) -> CandidateKindSpec:
    return CANDIDATE_KINDS[known_kind(name)]
