"""LoRA, connector-only and in-context candidates on the tiny student, saved in the HF adapter format."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import PeftConfig
from safetensors.torch import load_file

from gaptune.data.errors import ConfigError
from gaptune.data.world.world import pool, task_split
from gaptune.training.batching import training_batch, training_lengths
from gaptune.training.families import FAMILIES, Family
from gaptune.training.fit import FitSettings, fit
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.lora_trainer import (
    TrainerConfig,
    load_adapted,
    read_adapter_info,
    train_candidate,
    trainable_fraction,
)

pytestmark = pytest.mark.slow  # every test here trains

CONFIG = TrainerConfig(epochs=1, batch_size=8, device="cpu")


@pytest.fixture(scope="module")
def train_set() -> list:
    return list(pool(0, 24))


def _loss(student: Path, adapter: str | None, samples: list) -> float:
    model, processor = load_adapted(student, adapter)
    with torch.no_grad():
        return model(**training_batch(processor, samples, family=FAMILIES["llava"])).loss.item()


def test_lora_adapter_lowers_training_loss_and_is_a_peft_adapter(tiny_student: Path, train_set: list, tmp_path: Path) -> None:
    adapter = tmp_path / "lora"
    info = train_candidate(tiny_student, "lora", train_set, adapter, TrainerConfig(epochs=3, batch_size=8, device="cpu"), seed=1)
    assert PeftConfig.from_pretrained(adapter).peft_type == "LORA"
    assert info.kind == "lora" and info.parent is None and info.train_size == 24 and info.steps == 9
    assert _loss(tiny_student, str(adapter), train_set) < _loss(tiny_student, None, train_set)


def test_same_kind_continues_and_other_kind_stacks_on_the_merged_chain(
    tiny_student: Path, train_set: list, tmp_path: Path
) -> None:
    first = tmp_path / "r1"
    train_candidate(tiny_student, "lora", train_set, first, CONFIG, seed=1)
    again = tmp_path / "r2-lora"
    assert train_candidate(tiny_student, "lora", train_set, again, CONFIG, previous=str(first), seed=2).parent is None
    stacked = tmp_path / "r2-connector"
    info = train_candidate(tiny_student, "connector", train_set, stacked, CONFIG, previous=str(first), seed=2)
    assert info.parent == str(first)
    assert read_adapter_info(stacked).kind == "connector"
    model, _ = load_adapted(tiny_student, str(stacked))
    assert not any("lora" in name for name, _ in model.named_parameters()), "the chain is merged for evaluation"


def test_connector_only_trains_a_tiny_fraction(tiny_student: Path) -> None:
    connector, lora = trainable_fraction(tiny_student, "connector", CONFIG), trainable_fraction(tiny_student, "lora", CONFIG)
    assert 0 < connector < lora < 0.5
    assert connector < 0.05


def test_in_context_demonstrations_share_the_task_and_never_the_sample() -> None:
    samples = task_split("compare-counts", "probe", size=5) + list(pool(0, 40))
    chosen = pick_demonstrations(samples, samples, k=2, seed=0)
    for sample in samples[:5]:
        demos = chosen[sample.id]
        assert len(demos) == 2 and all(d.task == sample.task and d.id != sample.id for d in demos)
    assert chosen == pick_demonstrations(samples, samples, k=2, seed=0)


def test_in_context_candidate_trains_with_demonstrations(
    tiny_student: Path, train_set: list, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demonstrations reach the training batches: each row's prompt holds k other samples of its task."""
    from gaptune.training import fit as fit_module

    seen: list[tuple[list[str], dict[str, list[str]]]] = []
    original = fit_module.training_batch

    def recording(processor: object, samples: list, demonstrations: dict, *, family: Family) -> dict:
        seen.append(([s.id for s in samples], {k: [d.id for d in v] for k, v in demonstrations.items()}))
        return original(processor, samples, demonstrations, family=family)

    monkeypatch.setattr(fit_module, "training_batch", recording)
    info = train_candidate(tiny_student, "in-context", train_set[:8], tmp_path / "icl", CONFIG, seed=0)
    assert info.in_context_k == 2 and info.steps == 1
    (ids, demonstrations), = seen
    assert sorted(ids) == sorted(s.id for s in train_set[:8])
    assert all(len(demonstrations[i]) == 2 and i not in demonstrations[i] for i in ids)
    _, processor = load_adapted(tiny_student, None)
    llava = FAMILIES["llava"]
    with_demos = original(processor, train_set[:2], {s.id: train_set[2:4] for s in train_set[:2]}, family=llava)
    without = original(processor, train_set[:2], family=llava)
    assert with_demos["input_ids"].shape[1] > without["input_ids"].shape[1], "demonstrations lengthen the prompt"


def test_bad_module_pattern_names_the_config_key(tiny_student: Path, train_set: list, tmp_path: Path) -> None:
    config = TrainerConfig(family={"connector_modules": r".*no_such_module"})
    with pytest.raises(ConfigError, match=r"trainer\.family\.connector_modules"):
        train_candidate(tiny_student, "connector", train_set, tmp_path / "x", config)


def test_empty_training_set_is_refused(tiny_student: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        train_candidate(tiny_student, "lora", [], tmp_path / "x", CONFIG)


def _adapter_weights(adapter: Path) -> dict[str, torch.Tensor]:
    return load_file(adapter / "adapter_model.safetensors")


def test_same_seed_gives_identical_adapter_weights_whatever_trained_before(
    tiny_student: Path, train_set: list, tmp_path: Path
) -> None:
    """Deterministic on CPU; a candidate trained after another one in the same process (as a round trains them)
    gets exactly the weights it gets alone: nothing leaks from one training to the next."""
    for seed in (3, 4):
        train_candidate(tiny_student, "lora", train_set, tmp_path / f"first-{seed}", CONFIG, seed=seed)
    train_candidate(tiny_student, "connector", train_set, tmp_path / "between", CONFIG, seed=9)
    for seed in (4, 3):
        train_candidate(tiny_student, "lora", train_set, tmp_path / f"after-{seed}", CONFIG, seed=seed)
    for seed in (3, 4):
        first, after = _adapter_weights(tmp_path / f"first-{seed}"), _adapter_weights(tmp_path / f"after-{seed}")
        assert first.keys() == after.keys()
        assert all(torch.equal(first[name], after[name]) for name in first), f"seed {seed} differs across runs"
    different = _adapter_weights(tmp_path / "first-4")
    assert any(not torch.equal(tensor, different[name]) for name, tensor in _adapter_weights(tmp_path / "first-3").items())


@pytest.mark.parametrize("bucketed", [False, True])
def test_training_draws_nothing_from_the_global_rng(tiny_student: Path, train_set: list, bucketed: bool) -> None:
    """Training leaves the global RNG where the Trainer's own set_seed put it: the data order comes from the
    sampler's and the loader's own generators (the loader's worker seed draw once came from the global RNG)."""
    model, processor = load_adapted(tiny_student, None)
    model.requires_grad_(False)
    model.lm_head.requires_grad_(True)
    settings = FitSettings(device="cpu", batch_size=8, epochs=2, learning_rate=1e-4, group_by_length=bucketed,
                           progress=None, seed=7)
    assert fit(model, processor, train_set, settings).steps == 6
    assert torch.equal(torch.get_rng_state(), torch.Generator().manual_seed(7).get_state()), \
        "only the Trainer's own set_seed may touch the global RNG"


def test_bf16_base_keeps_the_adapter_in_fp32(tiny_student: Path, train_set: list, tmp_path: Path) -> None:
    config = TrainerConfig(epochs=1, batch_size=8, device="cpu", base_dtype="bfloat16", gradient_accumulation=2)
    info = train_candidate(tiny_student, "lora", train_set, tmp_path / "bf16-base", config, seed=0)
    assert info.steps == 2, "3 micro-batches of 8, two per optimizer step"
    assert 0 < info.final_loss < 20
    assert {tensor.dtype for tensor in _adapter_weights(tmp_path / "bf16-base").values()} == {torch.float32}


def test_length_bucketing_cuts_padding_and_lengths_are_exact(tiny_student: Path) -> None:
    _, processor = load_adapted(tiny_student, None)
    samples = list(pool(0, 128))  # the Trainer's bucketing sorts within mega-batches of 4 batches here
    lengths = training_lengths(processor, samples, family=FAMILIES["llava"])
    assert lengths == [int(training_batch(processor, [s], family=FAMILIES["llava"])["attention_mask"].sum())
                       for s in samples[:12]] + lengths[12:]
    shares = {}
    for bucketed in (False, True):
        model, _ = load_adapted(tiny_student, None)
        model.requires_grad_(False)
        model.lm_head.requires_grad_(True)
        settings = FitSettings(device="cpu", batch_size=8, learning_rate=1e-4, group_by_length=bucketed, progress=None)
        result = fit(model, processor, samples, settings)
        assert result.steps == 16 and sum(result.real_tokens) == sum(lengths)
        shares[bucketed] = result.padding_share
    assert 0 <= shares[True] < shares[False] < 1


def test_runs_one_after_another_each_get_their_own_precision(tiny_student: Path, train_set: list) -> None:
    """accelerate's process state is set up afresh by each run: bf16, then fp32, then bf16 again all train."""
    from accelerate.state import AcceleratorState

    for bf16 in (True, False, True):
        model, processor = load_adapted(tiny_student, None)
        model.requires_grad_(False)
        model.lm_head.requires_grad_(True)
        before = model.lm_head.weight.detach().clone()
        settings = FitSettings(device="cpu", batch_size=8, learning_rate=1e-3, bf16=bf16, progress=None)
        result = fit(model, processor, train_set[:16], settings)
        assert result.steps == 2 and len(result.losses) == 1 and result.losses[0] > 0
        assert not torch.equal(before, model.lm_head.weight), "the trained weights moved"
        assert model.lm_head.weight.dtype == torch.float32, "autocast never casts the weights themselves"
        assert AcceleratorState().mixed_precision == ("bf16" if bf16 else "no")


def test_config_keys_for_precision_and_device_are_checked() -> None:
    assert TrainerConfig().bf16 == "auto" and TrainerConfig().base_dtype == "float32"
    with pytest.raises(ValueError):
        TrainerConfig(device="tpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TrainerConfig(base_dtype="float16")  # type: ignore[arg-type]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_lora_on_gpu_trains_and_evaluates(tiny_student: Path, train_set: list, tmp_path: Path) -> None:
    config = TrainerConfig(epochs=2, batch_size=8, device="cuda", bf16=True, base_dtype="bfloat16",
                           gradient_checkpointing=True)
    info = train_candidate(tiny_student, "lora", train_set, tmp_path / "gpu", config, seed=0)
    assert info.steps == 6 and 0 < info.final_loss < _loss(tiny_student, None, train_set)
    assert {tensor.dtype for tensor in _adapter_weights(tmp_path / "gpu").values()} == {torch.float32}
    model, _ = load_adapted(tiny_student, str(tmp_path / "gpu"), device="cuda")
    assert next(model.parameters()).device.type == "cuda"


def test_progress_bar_writes_nothing_off_a_terminal(tiny_student: Path, train_set: list,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A log file gets no progress lines (tqdm off a TTY wrote one per refresh, thousands a run)."""
    model, processor = load_adapted(tiny_student, None)
    model.requires_grad_(False)
    model.lm_head.requires_grad_(True)
    settings = FitSettings(device="cpu", batch_size=8, learning_rate=1e-4, progress="training probe", log_every=1)
    assert fit(model, processor, train_set, settings).steps == 3
    captured = capsys.readouterr()
    assert "training probe" not in captured.err + captured.out
