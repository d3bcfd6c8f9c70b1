"""Loading a student: any Hugging Face image-text-to-text checkpoint from a local path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor


class StudentLoadError(RuntimeError):
    """The student path does not hold a loadable image-text-to-text model."""


def load_student(path: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """Model and processor through the Auto classes: the tiny student and a user's LLaVA load alike.

    Weights are read from disk only (`local_files_only`): a run never reaches a hub.
    """
    location = Path(path)
    if not (location / "config.json").is_file():
        raise StudentLoadError(
            f"student path {str(location)!r} has no config.json; expected a directory written by "
            "save_pretrained (model + processor), e.g. the output of `gaptune world student`"
        )
    processor = AutoProcessor.from_pretrained(location, local_files_only=True)
    model = AutoModelForImageTextToText.from_pretrained(location, local_files_only=True, dtype=dtype)
    model.to(device)  # type: ignore[arg-type]  # transformers types `to` through a wrapper expecting a model
    model.eval()
    return model, processor
