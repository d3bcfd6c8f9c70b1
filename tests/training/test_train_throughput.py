"""The training-throughput benchmark: ours against a plain Trainer + PEFT, tiny on CPU, 7b on a GPU."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _assert_sane(result: dict[str, Any]) -> None:
    for row in (result["ours"], result["plain"], *result["kinds"]):
        assert row["tokens_per_s"] > 0 and math.isfinite(row["tokens_per_s"])
        assert 0 < row["mfu"] < 1
        assert 0 <= row["padding_share"] < 1
        assert row["peak_memory_gib"] is None or row["peak_memory_gib"] > 0
    assert math.isfinite(result["ratio_tokens_per_s"]) and result["ratio_tokens_per_s"] > 0
    share = {row["kind"]: row["trainable_share"] for row in result["kinds"]}
    assert 0 < share["connector"] < share["lora"] < 0.5
    assert share["in-context"] == share["lora"], "in-context trains the same LoRA, on longer inputs"


@pytest.mark.slow
def test_tiny_benchmark_on_cpu_compares_both_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = _benchmark().main(["--size", "tiny", "--device", "cpu", "--batch", "8", "--warmup", "1", "--steps", "2",
                                "--kind-steps", "2", "--json", str(tmp_path / "tiny.json")])
    _assert_sane(result)
    assert result["ours"]["padding_share"] <= result["plain"]["padding_share"], "length bucketing pads less"
    assert json.loads((tmp_path / "tiny.json").read_text())["size"] == "tiny"
    printed = capsys.readouterr().out
    assert "ratio ours/plain" in printed and "| connector |" in printed


@pytest.mark.slow
def test_gpu_check_script_parses_its_arguments_and_writes_outputs(tmp_path: Path) -> None:
    """The script prepared for a GPU machine, run at tiny size; without CUDA its GPU tests are collected and skipped."""
    command = ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--size", "tiny", "--batch", "4", "--steps", "1",
               "--warmup", "0", "--kind-steps", "1"]
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((tmp_path / "train_throughput.json").read_text())["batch"] == 4
    assert "ratio ours/plain" in (tmp_path / "train_throughput.md").read_text()
    assert "skipped" in (tmp_path / "gpu_tests.txt").read_text(), "the GPU tests the script names exist"
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--bogus"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--bogus" in bad.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_7b_benchmark_on_gpu_runs_a_few_steps() -> None:
    result = _benchmark().main(["--size", "7b", "--batch", "4", "--warmup", "1", "--steps", "2", "--kind-steps", "1"])
    _assert_sane(result)
    assert result["p_base"] > 6e9
    assert result["ours"]["peak_memory_gib"] > 13, "bf16 base weights alone are ~13 GiB"
