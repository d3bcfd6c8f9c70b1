"""The built-in world's datasets: the task-agnostic pool, the student's pretraining mix, the target tasks.

Everything is a pure function of (world seed, namespace, index), so any sample
and its images can be regenerated from its id alone: nothing is stored, and a
50,000-sample pool costs nothing until it is read.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from functools import lru_cache

from PIL import Image

from gaptune.data.sample import RationaleStep, Sample
from gaptune.data.world.families import POOL_FAMILIES, TARGET_FAMILIES, Item, generate
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

# The student's pretraining mix: counting and spatial relations are rare (<= 0.5%
# in all, the prototypes' threshold for a real weakness), and each target task's
# format appears at ~1% (with no format exposure a tiny model stays near 0% on it).
PRETRAIN_WEIGHTS = {
    "colour-at": 11, "shape-at": 11, "size-at": 9, "exists": 11, "locate": 11, "scan": 30,
    "shape-of-colour": 10, "same-colour": 8, "bigger": 8, "spot-difference": 8, "what-changed": 8.3,
    "count-colour": 0.1, "count-shape": 0.1, "more-shapes": 0.1, "relation-at": 0.2,
    "compare-counts": 1, "relative-position": 1, "colour-count": 1, "changed-relation": 1,
}

TASKS = tuple(TARGET_FAMILIES)


def _rng(seed: int, namespace: str, index: int) -> random.Random:
    return random.Random(f"gaptune-world/{seed}/{namespace}/{index}")


def _family_for(seed: int, namespace: str, index: int) -> tuple[str, random.Random]:
    rng = _rng(seed, namespace, index)
    if namespace == "pool":
        weights = POOL_WEIGHTS
    elif namespace == "pretrain":
        weights = PRETRAIN_WEIGHTS
    else:
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
    if namespace not in ("pool", "pretrain"):
        split = namespace.split("/")[1]
        while _split_bucket(item) != split:
            item = generate(family, rng)
    return family, item


def world_sample(seed: int, namespace: str, index: int) -> Sample:
    """The sample at `index` of a namespace ("pool", "pretrain" or "<task>/<split>")."""
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
        source=f"world:{namespace.split('/')[0] if namespace in ('pool', 'pretrain') else 'target'}",
    )


def render_world_image(ref: str) -> Image.Image:
    """Render a `world://seed/namespace/index/k` image reference."""
    seed, *namespace, index, k = ref.removeprefix(WORLD_SCHEME).split("/")
    _, item = _item(int(seed), "/".join(namespace), int(index))
    return render(item.scenes[int(k)])


def pool(seed: int = 0, size: int = DEFAULT_POOL_SIZE) -> Iterator[Sample]:
    for index in range(size):
        yield world_sample(seed, "pool", index)


def pretraining_mix(seed: int, size: int, start: int = 0) -> list[Sample]:
    return [world_sample(seed, "pretrain", index) for index in range(start, start + size)]


def task_split(task: str, split: str, seed: int = 0, size: int | None = None) -> list[Sample]:
    """One split of a target task; splits never share a question about the same scenes (see `_split_bucket`)."""
    if task not in TARGET_FAMILIES:
        raise ValueError(f"unknown world task {task!r}; the world's tasks are: {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    count = DEFAULT_SPLIT_SIZES[split] if size is None else size
    return [world_sample(seed, f"{task}/{split}", index) for index in range(count)]


assert set(POOL_WEIGHTS) == set(POOL_FAMILIES), "every pool family needs a pool weight"
