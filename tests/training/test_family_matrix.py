"""The architecture matrix: gaptune's real path on a tiny checkpoint of each family in the registry.

Each family's checkpoint is built once per session from a config (training/tiny_families.py: the
family's real model and processor classes, a locally trained tokenizer, the family's chat template
layout), saved, and loaded back through the Auto classes as a user's download would be.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split
from gaptune.training.batching import IGNORE_INDEX, generation_batch, training_batch
from gaptune.training.config import TrainerConfig
from gaptune.training.evaluate import generate_outputs, score
from gaptune.training.families import FAMILIES, family_of
from gaptune.training.fit import fit
from gaptune.training.lora_trainer import (
    AdapterInfo,
    attach_adapter,
    fit_settings,
    load_adapted,
    read_adapter_info,
    save_adapter,
    train_candidate,
)
from gaptune.training.student import load_student
from gaptune.training.tiny_families import MODEL_ONLY, QWEN_PATCHES, QWEN_TOKENS, RECIPES, build_tiny_family, build_tiny_model

pytestmark = pytest.mark.slow
FAMILY_TYPES = sorted(RECIPES)
TRAINER = TrainerConfig(device="cpu", batch_size=4, learning_rate=3e-2, epochs=10, lora_rank=8, lora_alpha=16,
                        in_context_k=1, warmup_fraction=0.0, group_by_length=False)


@pytest.fixture(scope="session")
def family_dirs() -> dict[str, Path]:
    """Each family's checkpoint, built on first use and kept for the session."""
    return {}


@pytest.fixture(params=FAMILY_TYPES)
def checkpoint(request: pytest.FixtureRequest, family_dirs: dict[str, Path],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    model_type: str = request.param
    if model_type not in family_dirs:
        family_dirs[model_type] = build_tiny_family(model_type, tmp_path_factory.mktemp(model_type))
    return model_type, family_dirs[model_type]


def _samples(n: int, start: int = 0) -> list[Sample]:
    return task_split("compare-counts", "probe", 0, n, start=start)


def test_loading_batched_generation_and_answer_only_labels(checkpoint: tuple[str, Path]) -> None:
    model_type, path = checkpoint
    model, processor = load_student(path)
    assert model.config.model_type == model_type
    family = family_of(model)
    samples = _samples(5)
    batched = generate_outputs(model, processor, samples, batch_size=5, max_new_tokens=6)
    single = generate_outputs(model, processor, samples, batch_size=1, max_new_tokens=6)
    assert batched == single, f"{model_type}: padding on the {family.padding_side} changes greedy outputs"

    batch = training_batch(processor, samples[:2], family=family)
    end = family.end_of_turn or processor.tokenizer.eos_token
    for row, sample in enumerate(samples[:2]):
        labelled = batch["input_ids"][row][batch["labels"][row] != IGNORE_INDEX]
        assert processor.tokenizer.decode(labelled).strip() == sample.target_text() + end, "only the answer is trained"
    prompt = generation_batch(processor, samples[:1], family=family)["input_ids"][0]
    assert len(prompt) < batch["input_ids"].shape[1], "the generation prompt stops before the answer"


def test_a_lora_round_changes_the_answers_and_the_reloaded_adapter_answers_as_the_trained_model(
        checkpoint: tuple[str, Path], tmp_path: Path) -> None:
    _, path = checkpoint
    model, processor = load_student(path)
    samples = _samples(4)
    base = generate_outputs(model, processor, samples, max_new_tokens=24)
    batch = training_batch(processor, samples, family=family_of(model))
    with torch.no_grad():
        before = float(model(**batch).loss)
    model = attach_adapter(model, "lora", TRAINER)
    result = fit(model, processor, samples, fit_settings(TRAINER, "cpu", 0, "lora"))
    model.eval()
    with torch.no_grad():
        after = float(model(**batch).loss)
    assert result.steps == TRAINER.epochs and after < before - 0.1, (before, after)
    trained = generate_outputs(model, processor, samples, max_new_tokens=24)
    assert trained != base, "the adapter changes what the model says"
    assert len(score(samples, trained).attempts) == len(samples)

    adapter = tmp_path / "lora"
    save_adapter(model, AdapterInfo(kind="lora", parent=None, train_size=4, steps=result.steps,
                                    final_loss=result.final_loss), adapter)
    reloaded, processor = load_adapted(path, str(adapter))
    assert generate_outputs(reloaded, processor, samples, max_new_tokens=24) == trained


def test_connector_candidate_trains_the_projector_alone(checkpoint: tuple[str, Path], tmp_path: Path) -> None:
    model_type, path = checkpoint
    family = FAMILIES[model_type]
    info = train_candidate(path, "connector", _samples(4), tmp_path / "connector",
                           TRAINER.model_copy(update={"epochs": 2}))
    assert info.kind == "connector" and info.steps == 2
    weights = load_file(str(tmp_path / "connector" / "adapter_model.safetensors"))
    assert weights and all("lora_" in name for name in weights)
    # a bare weight's LoRA sits on the module that holds it
    connector = [family.connector_modules or "", *[re.escape(p.rsplit(".", 1)[0]) for p in family.connector_parameters]]
    for name in weights:
        module = name.split(".lora_")[0]
        assert any(re.search(pattern, module) for pattern in connector if pattern), (model_type, name)
    before, _ = load_student(path)
    after, _ = load_adapted(path, str(tmp_path / "connector"))
    changed = {n for n, p in after.named_parameters() if not torch.equal(p, before.get_parameter(n))}
    assert changed and all("projector" in n or "connector" in n or "merger" in n for n in changed), changed


def test_in_context_candidate_puts_the_demonstrations_images_in_the_prompt(
        checkpoint: tuple[str, Path], tmp_path: Path) -> None:
    _, path = checkpoint
    model, processor = load_student(path)
    family = family_of(model)
    sample, demo = _samples(2)
    alone = generation_batch(processor, [sample], family=family)
    with_demo = generation_batch(processor, [sample], {sample.id: [demo]}, family=family)
    assert with_demo["input_ids"].shape[1] > alone["input_ids"].shape[1] + len(demo.target_text()) // 8
    assert with_demo["pixel_values"].numel() == 2 * alone["pixel_values"].numel(), "two images in one prompt"

    info = train_candidate(path, "in-context", _samples(4), tmp_path / "in-context",
                           TRAINER.model_copy(update={"epochs": 1}))
    assert read_adapter_info(tmp_path / "in-context") == info and info.in_context_k == 1


def test_gaptune_run_goes_end_to_end_on_the_family_checkpoint(
        checkpoint: tuple[str, Path], cache_dir: Path, tmp_path: Path) -> None:
    """A user's `student.path` at the checkpoint: one round of the loop on the built-in world task."""
    from gaptune.graph.config import load_config
    from gaptune.graph.metrics import read_metrics
    from gaptune.graph.runner import run

    model_type, path = checkpoint
    overrides = [f"cache_dir={cache_dir}", f"student.path={path}", "max_rounds=1", "task.probe_size=24",
                 "task.val_size=16", "task.test_size=16", "pool.size=3000", "round_budget=24", "budget=24",
                 "trainer.epochs=1", "trainer.batch_size=8", "student.max_new_tokens=32"]
    run(load_config(None, overrides), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run" / "metrics.json")
    assert [r.round for r in metrics.rounds] == [0, 1], model_type
    assert len(metrics.used) == 24 and metrics.stop_reason is not None


@pytest.mark.parametrize("model_type", sorted(MODEL_ONLY))
def test_registry_targets_fit_the_model_class_of_a_family_without_a_processor_here(model_type: str) -> None:
    """Qwen2-VL / Qwen2.5-VL: the LoRA and connector targets hit the real modules, and a step trains them."""
    patch, merge, frames = QWEN_PATCHES["patch_size"], QWEN_PATCHES["spatial_merge_size"], QWEN_PATCHES["temporal_patch_size"]
    grid = torch.tensor([[1, 4, 4]])  # one image of 4 x 4 patches: 4 tokens after the 2 x 2 merge
    image = [QWEN_TOKENS["image_token_id"]] * (int(grid.prod()) // merge**2)
    ids = torch.tensor([[1, QWEN_TOKENS["vision_start_token_id"], *image, QWEN_TOKENS["vision_end_token_id"], 5, 6, 7]])
    for kind, where in (("lora", r"\.language_model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\."),
                        ("connector", r"\.visual\.merger\.mlp\.[02]\.")):
        model = attach_adapter(build_tiny_model(model_type), kind, TRAINER)
        assert family_of(model.get_base_model(), TRAINER.family) == FAMILIES[model_type]
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(re.search(where, n) and ".lora_" in n for n in trainable), (kind, list(trainable))
        loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids,
                     pixel_values=torch.randn(int(grid.prod()), 3 * frames * patch**2), image_grid_thw=grid,
                     mm_token_type_ids=(ids == QWEN_TOKENS["image_token_id"]).long()).loss
        loss.backward()
        # LoRA's B starts at zero, so the first step's gradient reaches every B (and no A yet).
        b_grads = [p.grad for n, p in trainable.items() if ".lora_B." in n]
        assert b_grads and all(g is not None and g.abs().sum() > 0 for g in b_grads), kind
