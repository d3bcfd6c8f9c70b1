"""The built-in world's datasets: the task-agnostic pool, the student's pretraining mix, the target tasks.

Everything is a pure function of (world seed, namespace, index), so any sample
and its images can be regenerated from its id alone: nothing is stored, and a
50,000-sample pool costs nothing until it is read.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Iterator
from functools import lru_cache

from PIL import Image

from gaptune.data.sample import RationaleStep, Sample
from gaptune.data.world.families import (
    ALL_FAMILIES,
    CROSSOVER_POOL_FAMILIES,
    CROSSOVER_TARGET_FAMILIES,
    FAMILIES,
    POOL_FAMILIES,
    TARGET_FAMILIES,
    Item,
    Program,
    generate,
)
from gaptune.data.world.scene import render

WORLD_SCHEME = "world://"
SPLITS = ("probe", "val", "test")
DEFAULT_SPLIT_SIZES = {"probe": 200, "val": 200, "test": 500}
DEFAULT_POOL_SIZE = 50_000

# The pool teaches counting and spatial relations only sparsely (~5% and ~2% of
# it): random selection rarely lands there, targeted selection must find it.
POOL_WEIGHTS = {
    "colour-at": 10, "shape-at": 10, "size-at": 8, "exists": 10, "locate": 10, "scan": 10,
    "shape-of-colour": 9, "same-colour": 9, "bigger": 9, "spot-difference": 9, "what-changed": 9.5,
    "count-colour": 1.5, "count-shape": 1.5, "more-shapes": 1.5, "relation-at": 2,
}

# The students' pretraining mixes. Each makes some skills rare (<= 0.5% in all,
# the prototypes' threshold for a real weakness) and shows each target task's
# format at ~1% (with no format exposure a tiny model stays near 0% on it).
# Two mixes with different rare skills give two students that need different
# data for the same target: the crossover a static choice of data cannot give.
_TARGET_FORMATS = {"compare-counts": 1, "relative-position": 1, "colour-count": 1, "changed-relation": 1}
PRETRAIN_MIXES: dict[str, dict[str, float]] = {
    # The embedded default's student: counting and spatial relations rare.
    "counting-spatial-rare": {
        "colour-at": 11, "shape-at": 11, "size-at": 9, "exists": 11, "locate": 11, "scan": 30,
        "shape-of-colour": 10, "same-colour": 8, "bigger": 8, "spot-difference": 8, "what-changed": 8.3,
        "count-colour": 0.1, "count-shape": 0.1, "more-shapes": 0.1, "relation-at": 0.2, **_TARGET_FORMATS,
    },
    # Comparison rare (same-colour, bigger, more-shapes); counting common. On
    # compare-counts this student should miss the comparison where the default
    # one misses the counts: the same target needing different data.
    "comparison-rare": {
        "colour-at": 11, "shape-at": 11, "size-at": 9, "exists": 11, "locate": 11, "scan": 30,
        "shape-of-colour": 10, "same-colour": 0.1, "bigger": 0.1, "spot-difference": 8, "what-changed": 8.3,
        "count-colour": 4, "count-shape": 4, "more-shapes": 0.1, "relation-at": 2, **_TARGET_FORMATS,
    },
}
DEFAULT_MIX = "counting-spatial-rare"

# The crossover world (v2): v1's families plus `find-big` (the size step on its own) and the
# target `big-colour-count` (find the big object, read its colour, count that colour). Its pool
# has its own namespace, so v1's pool ids and samples stay as they were.
WORLD_VERSIONS = ("v1", "v2")
POOL_NAMESPACES = {"v1": "pool", "v2": "pool.v2"}
WORLD_FAMILIES: dict[str, dict[str, Program]] = {"v1": FAMILIES, "v2": ALL_FAMILIES}
# find-big as sparse as count-colour: each skill of the target is taught by one sparse family.
POOL_WEIGHTS_V2 = {**POOL_WEIGHTS, "find-big": 1.5}

# Two mirror-image mixes: one makes counting rare, the other size, each rare skill at <= 0.5% of
# the mix's steps *including* those of the target's own format (0.55% of samples in both, one size
# and one counting step each), which the first world's mixes got wrong (rule 11 of DESIGN.md).
# A family absent from a mix has weight 0; the first world's target formats are absent from
# count-rare (their counting steps would count towards its rare skill).
_CROSSOVER_SHARED = {
    "colour-at": 11, "shape-at": 11, "exists": 11, "locate": 11, "scan": 30, "shape-of-colour": 10,
    "same-colour": 8, "spot-difference": 8, "what-changed": 8.3, "relation-at": 2, "big-colour-count": 0.75,
}
# A mix is immutable once a student is built from it (a student's cache key holds the mix's name,
# not its weights; tests/data/test_crossover_world.py pins each one): tuning adds a mix.
CROSSOVER_MIXES: dict[str, dict[str, float]] = {
    "count-rare": {**_CROSSOVER_SHARED, "size-at": 9, "find-big": 8, "bigger": 8, "count-colour": 0.1, "count-shape": 0.1},
    "size-rare": {**_CROSSOVER_SHARED, "count-colour": 9, "count-shape": 8, "more-shapes": 8, "size-at": 0.1, "find-big": 0.1},
    # Tuning iteration 1 (after the pilot's NO GO, on its base-student diagnostics only): size-rare's
    # student blamed counting in 28% of its wrong cases, its forced target count 0.405 although it
    # answers count-colour at 0.92: counting a colour that an earlier step read is a skill of its
    # own. count-rare sees its common skill in the target's context (find-big is the target's size
    # step); size-rare-2 does too: the first world's `colour-count` (locate, read the colour, count
    # it) takes the weight of `more-shapes`, so the total weight and the target's rate stay the same.
    "size-rare-2": {**_CROSSOVER_SHARED, "count-colour": 9, "count-shape": 8, "colour-count": 8, "size-at": 0.1,
                    "find-big": 0.1},
}
PRETRAIN_MIXES.update(CROSSOVER_MIXES)
# The crossover world's teacher: a model of the same world pretrained on every family of it at one
# weight (the target too), so that no skill is rare for it; the `world` critic reads its beliefs
# about answers (agents/world_teacher.py) and never a rationale.
TEACHER_MIXES: dict[str, dict[str, float]] = {"world-teacher": dict.fromkeys(ALL_FAMILIES, 1.0)}
PRETRAIN_MIXES.update(TEACHER_MIXES)
MIX_VERSIONS = {mix: "v2" if mix in CROSSOVER_MIXES or mix in TEACHER_MIXES else "v1" for mix in PRETRAIN_MIXES}

TASKS = (*TARGET_FAMILIES, *CROSSOVER_TARGET_FAMILIES)
TASK_VERSIONS = {task: "v2" if task in CROSSOVER_TARGET_FAMILIES else "v1" for task in TASKS}


def _rng(seed: int, namespace: str, index: int) -> random.Random:
    return random.Random(f"gaptune-world/{seed}/{namespace}/{index}")


def _mixture(namespace: str) -> dict[str, float] | None:
    """The family weights of a drawn namespace ("pool", "pool.v2", "pretrain", "pretrain.<mix>"); None for a task split."""
    if namespace == POOL_NAMESPACES["v1"]:
        return POOL_WEIGHTS
    if namespace == POOL_NAMESPACES["v2"]:
        return POOL_WEIGHTS_V2
    if namespace == "pretrain":
        return PRETRAIN_MIXES[DEFAULT_MIX]
    if namespace.startswith("pretrain."):
        return PRETRAIN_MIXES[namespace.removeprefix("pretrain.")]
    return None


def _is_drawn(namespace: str) -> bool:
    return _mixture(namespace) is not None


def _family_for(seed: int, namespace: str, index: int) -> tuple[str, random.Random]:
    rng = _rng(seed, namespace, index)
    weights = _mixture(namespace)
    if weights is None:
        return namespace.split("/")[0], rng
    return rng.choices(list(weights), weights=list(weights.values()))[0], rng


def _split_bucket(item: Item) -> str:
    """The one split allowed to hold this question about these scenes.

    Distinct per-split seeds alone do not keep splits apart: the scene space is
    small, and at 1,000+ samples per split probe/val/test did share identical
    questions about identical scenes. A stable hash partitions the item space.
    """
    digest = hashlib.sha256(repr((item.question, item.scenes)).encode()).digest()
    return SPLITS[digest[0] % len(SPLITS)]


@lru_cache(maxsize=65536)
def _item(seed: int, namespace: str, index: int) -> tuple[str, Item]:
    family, rng = _family_for(seed, namespace, index)
    item = generate(family, rng)
    if not _is_drawn(namespace):
        split = namespace.split("/")[1]
        while _split_bucket(item) != split:
            item = generate(family, rng)
    return family, item


def world_sample(seed: int, namespace: str, index: int) -> Sample:
    """The sample at `index` of a namespace ("pool", "pool.v2", "pretrain", "pretrain.<mix>" or "<task>/<split>")."""
    family, item = _item(seed, namespace, index)
    prefix = namespace.replace("/", "-")
    return Sample(
        id=f"{prefix}-{index:06d}",
        images=[f"{WORLD_SCHEME}{seed}/{namespace}/{index}/{k}" for k in range(len(item.scenes))],
        question=item.question,
        answer=item.answer,
        choices=list(item.choices) if item.choices else None,
        steps=[RationaleStep(text=text, skill=skill) for text, skill in item.steps],
        skills=sorted({skill for _, skill in item.steps}),
        task=family,
        source=f"world:{namespace.split('.')[0] if _is_drawn(namespace) else 'target'}",
    )


def render_world_image(ref: str) -> Image.Image:
    """Render a `world://seed/namespace/index/k` image reference."""
    seed, *namespace, index, k = ref.removeprefix(WORLD_SCHEME).split("/")
    _, item = _item(int(seed), "/".join(namespace), int(index))
    return render(item.scenes[int(k)])


def pool(seed: int = 0, size: int = DEFAULT_POOL_SIZE, exclude_families: Collection[str] = (), *,
         version: str = "v1") -> Iterator[Sample]:
    """The pool of a world version in order; `exclude_families` drops whole families (their ids stay unused)."""
    namespace = POOL_NAMESPACES[version]
    for index in range(size):
        if exclude_families and _item(seed, namespace, index)[0] in exclude_families:
            continue
        yield world_sample(seed, namespace, index)


def known_mix(mix: str) -> str:
    """`mix` itself when it names one of the world's pretraining mixes; otherwise an error listing them."""
    if mix not in PRETRAIN_MIXES:
        raise ValueError(f"unknown pretraining mix {mix!r}; the world's mixes are: {', '.join(PRETRAIN_MIXES)}")
    return mix


def pretraining_mix(seed: int, size: int, start: int = 0, mix: str = DEFAULT_MIX) -> list[Sample]:
    """The student's pretraining samples; the default mix keeps its historical namespace (and data)."""
    known_mix(mix)
    namespace = "pretrain" if mix == DEFAULT_MIX else f"pretrain.{mix}"
    return [world_sample(seed, namespace, index) for index in range(start, start + size)]


# Index offsets: draw d of a split starts at d * DRAW_STRIDE; the ceiling arm's
# target samples (same bucket as probe, so never in val or test) start higher.
DRAW_STRIDE = 100_000
CEILING_START = 10_000_000


def task_split(task: str, split: str, seed: int = 0, size: int | None = None, *, start: int = 0) -> list[Sample]:
    """One split of a target task; splits never share a question about the same scenes (see `_split_bucket`).

    `start` picks another draw of the same split (see DRAW_STRIDE): a new
    probe/val draw per experiment seed, while the test split stays fixed.
    """
    if task not in TASKS:
        raise ValueError(f"unknown world task {task!r}; the world's tasks are: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    count = DEFAULT_SPLIT_SIZES[split] if size is None else size
    return [world_sample(seed, f"{task}/{split}", index) for index in range(start, start + count)]


assert set(POOL_WEIGHTS) == set(POOL_FAMILIES), "every pool family needs a pool weight"
assert set(POOL_WEIGHTS_V2) == set(POOL_FAMILIES) | set(CROSSOVER_POOL_FAMILIES), "every v2 pool family needs a weight"
assert all(set(PRETRAIN_MIXES[mix]) == set(FAMILIES) for mix, version in MIX_VERSIONS.items() if version == "v1")
assert all(set(mix) <= set(ALL_FAMILIES) for mix in CROSSOVER_MIXES.values())
