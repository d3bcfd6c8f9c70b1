"""The built-in world: a pure function of its seed, with target splits that never leak into each other."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from gaptune.data.images import open_image
from gaptune.data.world.world import (
    CEILING_START,
    DRAW_STRIDE,
    SPLITS,
    TASKS,
    _item,
    _split_bucket,
    pool,
    pretraining_mix,
    task_split,
)


def _fingerprint(samples) -> list[tuple[str, bytes]]:
    return [(s.model_dump_json(), b"".join(open_image(ref).tobytes() for ref in s.images)) for s in samples]


def test_same_seed_gives_the_same_samples_and_image_bytes_in_a_fresh_process() -> None:
    here = _fingerprint(list(pool(seed=7, size=30)) + task_split("colour-count", "val", seed=7, size=10))
    script = (
        "import hashlib\n"
        "from gaptune.data.images import open_image\n"
        "from gaptune.data.world.world import pool, task_split\n"
        "samples = list(pool(seed=7, size=30)) + task_split('colour-count', 'val', seed=7, size=10)\n"
        "for s in samples:\n"
        "    data = b''.join(open_image(r).tobytes() for r in s.images)\n"
        "    print(hashlib.sha256(s.model_dump_json().encode() + b'|' + data).hexdigest())\n"
    )
    there = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert there == [hashlib.sha256(text.encode() + b"|" + data).hexdigest() for text, data in here]


def test_different_seeds_give_different_samples_and_images() -> None:
    first, second = list(pool(seed=0, size=50)), list(pool(seed=1, size=50))
    assert [s.id for s in first] == [s.id for s in second]
    assert [(s.question, s.answer) for s in first] != [(s.question, s.answer) for s in second]
    first_pixels = [open_image(s.images[0]).tobytes() for s in first]
    second_pixels = [open_image(s.images[0]).tobytes() for s in second]
    assert sum(a != b for a, b in zip(first_pixels, second_pixels, strict=True)) > 40


def _keys(task: str, split: str, seed: int, size: int | None) -> tuple[set[str], set[tuple[str, bytes]]]:
    samples = task_split(task, split, seed=seed, size=size)
    ids = {s.id for s in samples}
    contents = {(s.question, b"".join(open_image(ref).tobytes() for ref in s.images)) for s in samples}
    return ids, contents


@pytest.mark.parametrize("task", TASKS)
def test_default_splits_share_no_id_and_no_question_about_the_same_scene(task: str) -> None:
    keys = {split: _keys(task, split, 0, None) for split in SPLITS}
    for a, b in (("probe", "val"), ("probe", "test"), ("val", "test")):
        assert not keys[a][0] & keys[b][0]
        assert not keys[a][1] & keys[b][1]
    assert {split: len(keys[split][0]) for split in SPLITS} == {"probe": 200, "val": 200, "test": 500}


def test_large_splits_stay_disjoint() -> None:
    # seed 1, compare-counts: before splits were partitioned by content hash,
    # val and test at these sizes held the same question about the same scene.
    keys = {split: _keys("compare-counts", split, 1, size)[1]
            for split, size in (("probe", 1000), ("val", 1000), ("test", 2000))}
    assert not keys["probe"] & keys["val"]
    assert not keys["probe"] & keys["test"]
    assert not keys["val"] & keys["test"]


def test_world_samples_carry_skill_labelled_steps() -> None:
    for sample in task_split("relative-position", "probe", size=20):
        assert sample.steps and sample.skills == sorted({step.skill for step in sample.steps})
        assert sample.target_text().endswith(f"answer: {sample.answer}")
        assert sample.answer in (sample.choices or [])


def test_unknown_task_or_split_is_named() -> None:
    with pytest.raises(ValueError, match="unknown world task 'nope'"):
        task_split("nope", "probe")
    with pytest.raises(ValueError, match="unknown split 'train'"):
        task_split(TASKS[0], "train")


def _skill_share(mix: str, skill: str, size: int = 20_000) -> float:
    """Share of the mix's pool-family samples (target formats aside) that exercise `skill`."""
    samples = pretraining_mix(0, size, mix=mix)
    return sum(skill in s.skills and s.task not in TASKS for s in samples) / size


@pytest.mark.parametrize(("mix", "rare", "common"), [
    ("counting-spatial-rare", "counting", "comparison"),
    ("comparison-rare", "comparison", "counting"),
])
def test_each_mix_makes_its_skill_rare_and_shows_the_target_format(mix: str, rare: str, common: str) -> None:
    target_format = sum(s.task == "compare-counts" for s in pretraining_mix(0, 20_000, mix=mix)) / 20_000
    assert 0.007 < target_format < 0.014
    assert _skill_share(mix, rare) <= 0.005
    assert _skill_share(mix, common) > 0.05


def test_the_default_mix_keeps_its_historical_samples() -> None:
    assert pretraining_mix(0, 5) == pretraining_mix(0, 5, mix="counting-spatial-rare")
    assert [s.id for s in pretraining_mix(0, 3, mix="comparison-rare")] == [
        "pretrain.comparison-rare-000000", "pretrain.comparison-rare-000001", "pretrain.comparison-rare-000002"]
    with pytest.raises(ValueError, match="unknown pretraining mix"):
        pretraining_mix(0, 1, mix="nope")


def test_draws_and_the_ceiling_come_from_the_probe_bucket_but_differ() -> None:
    first = task_split("compare-counts", "probe", size=50)
    for start in (DRAW_STRIDE, CEILING_START):
        other = task_split("compare-counts", "probe", size=50, start=start)
        assert not {s.id for s in first} & {s.id for s in other}
        # Same bucket as the probe split, so never a question about a val or test scene.
        assert all(_split_bucket(_item(0, "compare-counts/probe", start + i)[1]) == "probe" for i in range(50))


def test_pool_can_leave_out_families() -> None:
    kept = list(pool(0, 2000, exclude_families={"more-shapes", "scan"}))
    assert kept and not {s.task for s in kept} & {"more-shapes", "scan"}
    assert len(kept) < 2000
