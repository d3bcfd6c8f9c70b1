"""Shared fixtures: a quickly pretrained tiny student and a small run config over the real world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gaptune.training.config import TinyStudentConfig
from gaptune.training.tiny_student import build_tiny_student

# A short pretraining: the loop tests need a real, loadable student that writes
# the answer format, not the full embedded-default student (that takes minutes).
# lr 2e-3 learns the format in 120 steps (the image is not read yet, which the
# plumbing tests do not need).
TEST_STUDENT = TinyStudentConfig(steps=120, pretrain_samples=4000, text_layers=2, batch_size=32, learning_rate=2e-3)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the session (students, pool index, embeddings); GAPTUNE_TEST_CACHE reuses one across sessions."""
    shared = os.environ.get("GAPTUNE_TEST_CACHE")
    return Path(shared) if shared else tmp_path_factory.mktemp("gaptune-cache")


@pytest.fixture(scope="session")
def tiny_student(cache_dir: Path) -> Path:
    return build_tiny_student(cache_dir, TEST_STUDENT)


@pytest.fixture(scope="session")
def small_loop(cache_dir: Path, tiny_student: Path) -> list[str]:
    """A two-round loop on the test student that finishes in about a minute: what the loop tests run."""
    return [
        f"cache_dir={cache_dir}", f"student.path={tiny_student}",
        "task.probe_size=40", "task.val_size=40", "task.test_size=40", "pool.size=3000",
        "round_budget=60", "budget=120", "max_rounds=2", "patience=2", "min_delta=0.0",
        "trainer.epochs=1", "trainer.batch_size=16",
    ]
