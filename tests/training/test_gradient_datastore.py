"""The gradient datastore on the tiny student: exact per-sample gradients, a resumable fingerprinted cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from peft import get_peft_model

import gaptune.training.gradient_datastore as store
from gaptune.data.world.world import pool, task_split
from gaptune.training.batching import training_batch
from gaptune.training.families import family_of
from gaptune.training.student import load_student

pytestmark = pytest.mark.slow  # every test here trains or back-propagates through the student

SETTINGS = store.DatastoreSettings(warmup_share=0.25, warmup_epochs=1, batch_size=8, projection_dim=16)


def test_batched_per_sample_gradients_equal_one_sample_at_a_time(tiny_student: Path) -> None:
    model, processor = load_student(tiny_student)
    torch.manual_seed(0)
    model = get_peft_model(model, store._lora(SETTINGS))
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # LoRA starts B at zero, which would zero every A gradient
            parameter.data.normal_(0, 0.05)
    names = store._trainable_names(model)
    samples = list(pool(0, 3))
    batched = store._per_sample_gradients(model, processor, samples, names)
    parameters = dict(model.named_parameters())
    for row, sample in enumerate(samples):
        model.zero_grad(set_to_none=True)
        model(**training_batch(processor, [sample], family=family_of(model))).loss.backward()
        alone = torch.cat([parameters[name].grad.flatten() for name in names])
        assert batched[row].abs().max() > 0
        torch.testing.assert_close(batched[row], alone, rtol=1e-4, atol=1e-6)


def test_a_killed_build_resumes_at_the_missing_chunk_and_settings_name_the_store(
    tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_CHUNK", 16)
    samples = list(pool(0, 40))
    full = store.open_or_build(tmp_path, tiny_student, samples, SETTINGS, progress=False)
    assert full.features.shape == (40, 16) and full.pool_ids == [s.id for s in samples]
    assert full.manifest.warmup_samples == 10 and full.manifest.parameters > 1000
    (full.directory / "manifest.json").unlink()
    (full.directory / "pool-00000016.npy").unlink()
    computed: list[int] = []
    resumed = store.open_or_build(tmp_path, tiny_student, samples, SETTINGS, progress=False, on_chunk=computed.append)
    assert computed == [16], "only the missing chunk is computed again"
    np.testing.assert_array_equal(resumed.features, full.features)
    other = store.fingerprint(tiny_student, [s.id for s in samples], SETTINGS.model_copy(update={"projection_dim": 8}))
    assert other != full.directory.name
    assert store.fingerprint(tiny_student, [s.id for s in samples[:-1]], SETTINGS) != full.directory.name
    targets = task_split("compare-counts", "probe", size=5)
    features = full.target_features(tiny_student, targets, SETTINGS)
    assert features.shape == (5, 16) and np.isfinite(features).all() and np.abs(features).sum() > 0
