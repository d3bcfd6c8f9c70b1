"""The crossover world (v2): its families, its two mirror-image mixes, and that v1 stays as it was."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import pytest

from gaptune.data.images import open_image
from gaptune.data.world.families import COUNTING, SIZE, generate
from gaptune.data.world.scene import render
from gaptune.data.world.world import (
    CROSSOVER_MIXES,
    DEFAULT_MIX,
    MIX_VERSIONS,
    TASK_VERSIONS,
    _item,
    pool,
    pretraining_mix,
    task_split,
)

MIX_SAMPLES = 30_000


def _steps_per_skill(mix: str) -> tuple[Counter[str], int, int]:
    """Steps per skill label over the mix's first samples, target-format steps included (rule 11)."""
    steps: Counter[str] = Counter()
    target = 0
    for sample in pretraining_mix(0, MIX_SAMPLES, mix=mix):
        steps.update(step.skill for step in sample.steps or [])
        target += sample.task == "big-colour-count"
    return steps, sum(steps.values()), target


@pytest.fixture(scope="module")
def mix_counts() -> dict[str, tuple[Counter[str], int, int]]:
    return {mix: _steps_per_skill(mix) for mix in CROSSOVER_MIXES}


@pytest.mark.parametrize(("mix", "rare", "other"), [("count-rare", COUNTING, "size-rare"), ("size-rare", SIZE, "count-rare"),
                                                   ("count-rare", COUNTING, "size-rare-2"), ("size-rare-2", SIZE, "count-rare")])
def test_each_mix_makes_its_skill_rare_counting_the_target_formats_own_steps(
    mix_counts: dict[str, tuple[Counter[str], int, int]], mix: str, rare: str, other: str,
) -> None:
    steps, total, _ = mix_counts[mix]
    other_steps, _, _ = mix_counts[other]
    assert steps[rare] / total <= 0.005
    assert steps[rare] * 5 <= other_steps[rare]
    # The other skill of the pair is common here: the two mixes are mirror images.
    common = SIZE if rare == COUNTING else COUNTING
    assert steps[common] / total > 0.05


def test_both_mixes_show_the_target_format_at_the_same_low_rate(
    mix_counts: dict[str, tuple[Counter[str], int, int]],
) -> None:
    rates = [mix_counts[mix][2] / MIX_SAMPLES for mix in CROSSOVER_MIXES]
    assert all(0.004 < rate < 0.007 for rate in rates)
    assert len({mix["big-colour-count"] for mix in CROSSOVER_MIXES.values()}) == 1
    assert len({sum(mix.values()) for mix in CROSSOVER_MIXES.values()}) == 1
    # No first-world target format: their counting steps would count towards the rare skill.
    assert {s.task for s in pretraining_mix(0, 5_000, mix="count-rare")}.isdisjoint(
        {"compare-counts", "colour-count", "relative-position", "changed-relation"})


def test_the_target_needs_size_then_colour_then_counting_and_its_answer_is_true_of_the_scene() -> None:
    for sample in task_split("big-colour-count", "probe", size=50):
        assert [step.skill for step in sample.steps or []] == [SIZE, "colour", COUNTING]
        (scene,) = _item(0, "big-colour-count/probe", int(sample.id.rsplit("-", 1)[1]))[1].scenes
        big = [o for o in scene.objects if o.size == "big"]
        assert len(big) == 1
        assert (sample.steps or [])[0].text == f"big object at {big[0].position}"
        assert sample.answer == str(len(scene.matching(big[0].colour)))
        assert sample.choices is None


def test_find_big_teaches_the_size_step_in_the_targets_wording() -> None:
    item = generate("find-big", random.Random(3))
    (scene,) = item.scenes
    (big,) = [o for o in scene.objects if o.size == "big"]
    assert item.steps == ((f"big object at {big.position}", SIZE),)
    assert item.answer == big.position
    assert render(scene).getbbox() is not None


def test_the_v2_pool_is_its_own_namespace_and_teaches_both_skills() -> None:
    samples = list(pool(0, 4_000, version="v2"))
    assert samples[0].id == "pool.v2-000000"
    families = Counter(s.task for s in samples)
    assert families["find-big"] > 20 and families["count-colour"] > 20
    assert open_image(samples[0].images[0]).size == (24, 24)


def test_versions_of_mixes_and_tasks() -> None:
    assert MIX_VERSIONS[DEFAULT_MIX] == "v1" and MIX_VERSIONS["comparison-rare"] == "v1"
    assert MIX_VERSIONS["count-rare"] == MIX_VERSIONS["size-rare"] == "v2"
    assert TASK_VERSIONS["big-colour-count"] == "v2" and TASK_VERSIONS["compare-counts"] == "v1"


def test_size_rare_2_counts_a_colour_an_earlier_step_read_as_count_rare_finds_the_big_object(
    mix_counts: dict[str, tuple[Counter[str], int, int]],
) -> None:
    chained = Counter(s.task for s in pretraining_mix(0, 5_000, mix="size-rare-2"))
    assert chained["colour-count"] > 200 and chained["more-shapes"] == 0
    assert Counter(s.task for s in pretraining_mix(0, 5_000, mix="count-rare"))["find-big"] > 200
    # Size stays as rare as in the pilot's size-rare.
    assert mix_counts["size-rare-2"][0][SIZE] == pytest.approx(mix_counts["size-rare"][0][SIZE], rel=0.3)


@pytest.mark.parametrize("mix", sorted(CROSSOVER_MIXES))
def test_a_crossover_mix_is_never_edited_once_students_are_built_from_it(mix: str) -> None:
    """A student's cache key holds its mix's name, not its weights: an edited mix would reuse stale students."""
    weights = ",".join(f"{family}={weight}" for family, weight in sorted(CROSSOVER_MIXES[mix].items()))
    assert _digest([weights]) == V2_MIXES[mix], f"mix {mix!r} changed: add a new mix instead"


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


def test_the_first_world_is_byte_for_byte_what_it_was() -> None:
    """Pool, mixes and tokenizer text of v1 hashed at commit c267016, before the crossover world existed."""
    from gaptune.training.tiny_student import world_text

    assert _digest([s.model_dump_json() for s in pool(0, 3_000)]) == V1_POOL
    assert _digest([s.model_dump_json() for s in pretraining_mix(0, 3_000)]) == V1_DEFAULT_MIX
    assert _digest([s.model_dump_json() for s in pretraining_mix(0, 3_000, mix="comparison-rare")]) == V1_COMPARISON_MIX
    assert _digest(world_text(0, "v1")) == V1_TOKENIZER_TEXT


# Computed at c267016 with the same expressions (the crossover world did not exist yet).
V1_POOL = "4fdcf6a3b898f6c9"
V1_DEFAULT_MIX = "f4d4f6610c64bca5"
V1_COMPARISON_MIX = "e66444471f202940"
V1_TOKENIZER_TEXT = "c9aeadbbcef954bb"
# Each crossover mix's weights as its students were built from it (count-rare and size-rare at a4d4d96,
# size-rare-2 at tuning iteration 1).
V2_MIXES = {"count-rare": "be3b9a95fb32a6f7", "size-rare": "f35b3861ea39b5a0", "size-rare-2": "44819f933d1c4a41"}
