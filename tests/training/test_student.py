"""The tiny student: a real LLaVA saved with save_pretrained and loaded through the Auto classes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    LlavaForConditionalGeneration,
    get_scheduler,
)

from gaptune.data.world.world import task_split
from gaptune.training.batching import IGNORE_INDEX, generation_batch, training_batch
from gaptune.training.config import TinyStudentConfig
from gaptune.training.evaluate import evaluate, score
from gaptune.training.families import FAMILIES
from gaptune.training.fit import training_arguments
from gaptune.training.student import StudentLoadError, load_student
from gaptune.training.tiny_student import pretrain_settings, shipped_student_path


@pytest.mark.slow
def test_saved_student_loads_through_the_auto_classes(tiny_student: Path) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_student, local_files_only=True)
    processor = AutoProcessor.from_pretrained(tiny_student, local_files_only=True)
    assert isinstance(model, LlavaForConditionalGeneration)
    assert type(processor).__name__ == "LlavaProcessor"
    assert type(processor.image_processor).__name__ == "CLIPImageProcessorPil"
    record = json.loads((tiny_student / "gaptune_student.json").read_text())
    steps = record["config"]["steps"]
    assert len(record["loss_curve"]) == -(-steps // 50), "one loss per 50 steps, and the last partial window"
    assert record["loss_curve"][-1] < record["loss_curve"][0]


def test_pretraining_recipe_on_the_trainer_path(tmp_path: Path) -> None:
    """Warmup 5%, then cosine down to a 5% floor; weight decay 0.01, clip 1.0; the device is not in the cache key."""
    config = TinyStudentConfig()
    settings = pretrain_settings(config, "cpu")
    args = training_arguments(settings, str(tmp_path))
    assert (args.max_steps, args.per_device_train_batch_size, args.learning_rate) == (4500, 48, 5e-4)
    assert (args.weight_decay, args.max_grad_norm, args.save_strategy, args.report_to) == (0.01, 1.0, "no", [])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.learning_rate)
    schedule = get_scheduler(args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(4500),
                             num_training_steps=4500, scheduler_specific_kwargs=args.lr_scheduler_kwargs)
    rates = [schedule.get_last_lr()[0]]
    for _ in range(4500):
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates[225] == pytest.approx(5e-4) and max(rates) == pytest.approx(5e-4)
    assert rates[4500] == pytest.approx(0.05 * 5e-4)
    assert TinyStudentConfig(device="cpu").fingerprint() == config.fingerprint()


@pytest.mark.slow
def test_tokenizer_encodes_any_text_and_world_words_are_single_tokens(tiny_student: Path) -> None:
    _, processor = load_student(tiny_student)
    tokenizer = processor.tokenizer
    for word in (" red", " circle", " count", " top", " answer"):
        assert len(tokenizer.tokenize(word)) == 1, word
    text = "Wie viele Äpfel? 苹果 🍎"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


@pytest.mark.slow
def test_training_batch_masks_everything_but_the_answer(tiny_student: Path) -> None:
    _, processor = load_student(tiny_student)
    samples = task_split("compare-counts", "probe", size=3)
    batch = training_batch(processor, samples, family=FAMILIES["llava"])
    for row, sample in enumerate(samples):
        labelled = batch["labels"][row][batch["labels"][row] != IGNORE_INDEX]
        decoded = processor.tokenizer.decode(labelled, skip_special_tokens=False)
        assert decoded.strip() == sample.target_text() + processor.tokenizer.eos_token


@pytest.mark.slow
def test_generation_batch_is_left_padded(tiny_student: Path) -> None:
    _, processor = load_student(tiny_student)
    samples = task_split("changed-relation", "probe", size=2) + task_split("compare-counts", "probe", size=2)
    batch = generation_batch(processor, samples, family=FAMILIES["llava"])
    pad = processor.tokenizer.pad_token_id
    assert (batch["input_ids"][:, -1] != pad).all()
    assert batch["pixel_values"].shape[0] == sum(len(s.images) for s in samples)


@pytest.mark.slow
def test_batched_generation_equals_one_by_one(tiny_student: Path) -> None:
    model, processor = load_student(tiny_student)
    samples = task_split("relative-position", "val", size=6)
    batched = evaluate(model, processor, samples, batch_size=6)
    single = evaluate(model, processor, samples, batch_size=1)
    assert [a.output for a in batched.attempts] == [a.output for a in single.attempts]


def test_score_tallies_per_skill_and_family() -> None:
    samples = task_split("compare-counts", "probe", size=2)
    outputs = [samples[0].target_text(), "count red = 9; answer: maybe"]
    evaluation = score(samples, outputs)
    assert evaluation.overall.correct == 1 and evaluation.overall.total == 2
    assert evaluation.per_skill["counting"].accuracy == 0.5
    assert evaluation.per_family["compare-counts"].total == 2
    assert evaluation.attempts[1].steps == ["count red = 9"] and evaluation.attempts[1].answer == "maybe"


def test_missing_student_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StudentLoadError, match="no config.json"):
        load_student(tmp_path)


def test_the_default_recipe_ships_its_student() -> None:
    """A recipe change without re-shipping the default student (gaptune world student --force, copied) fails here."""
    shipped = shipped_student_path(TinyStudentConfig())
    assert shipped is not None, f"no shipped student for the default recipe {TinyStudentConfig().fingerprint()}"
    record = json.loads((shipped / "gaptune_student.json").read_text())
    assert TinyStudentConfig.model_validate(record["config"]).fingerprint() == TinyStudentConfig().fingerprint()


@pytest.mark.slow
def test_a_shipped_student_is_copied_not_built_and_a_rebuild_verifies_it(
        tiny_student: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from conftest import TEST_STUDENT

    import gaptune.training.tiny_student as tiny

    monkeypatch.setattr(tiny, "SHIPPED_DIR", tmp_path / "shipped")
    shutil.copytree(tiny_student, tmp_path / "shipped" / tiny_student.name)
    path = tiny.build_tiny_student(tmp_path / "cache", TEST_STUDENT)
    assert path == tmp_path / "cache" / "students" / tiny_student.name
    assert (path / "model.safetensors").read_bytes() == (tiny_student / "model.safetensors").read_bytes()
    check = tiny.verify_shipped(TEST_STUDENT, tmp_path / "scratch")
    assert check.identical and check.agrees, check  # same recipe, same machine: the same weights
    assert check.final_loss_rebuilt == check.final_loss_shipped
