"""The one text normaliser: how skills, steps and answers are compared everywhere."""

from __future__ import annotations

_SURROUNDING = " .,;:!?\"'"


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding punctuation or quotes ("  Counting. " -> "counting")."""
    return " ".join(text.lower().split()).strip(_SURROUNDING)
