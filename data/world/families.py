"""Question families of the built-in world: small programs whose steps carry skill labels.

A family draws a scene (or two), asks one question and writes the gold
rationale as the program runs, so every step names the one skill it
exercises. Families share their step phrasings ("count red = 2",
"red circle at top left"), which is what lets a skill learned in one family
transfer to another.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from gaptune.data.world.scene import (
    COLOURS,
    POSITIONS,
    SHAPES,
    Scene,
    WorldObject,
    random_scene,
    with_one_change,
)

COLOUR = "colour"
SHAPE = "shape"
SIZE = "size"
COUNTING = "counting"
EXISTENCE = "existence"
LOCALISATION = "localisation"
SPATIAL_RELATION = "spatial relation"
COMPARISON = "comparison"
DIFFERENCE = "difference"

SKILL_DESCRIPTIONS = {
    COLOUR: "naming the colour of an object",
    SHAPE: "naming the shape of an object",
    SIZE: "telling small objects from big ones",
    COUNTING: "counting the objects of a colour or shape",
    EXISTENCE: "deciding whether an object is present",
    LOCALISATION: "finding where an object is",
    SPATIAL_RELATION: "deciding whether one position is left of, right of, above or below another",
    COMPARISON: "comparing two values: more than, bigger than, same as",
    DIFFERENCE: "spotting what differs between two images",
}

Step = tuple[str, str]


@dataclass(frozen=True)
class Item:
    """What a family program produces: scenes, a question, gold steps, the answer."""

    scenes: tuple[Scene, ...]
    question: str
    steps: tuple[Step, ...]
    answer: str
    choices: tuple[str, ...] | None = None


class Retry(Exception):
    """The drawn scene cannot carry this family's question; draw another."""


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


def _unique(scene: Scene, obj: WorldObject, *, by_shape: bool = True) -> bool:
    return len(scene.matching(obj.colour, obj.shape if by_shape else None)) == 1


def _name(obj: WorldObject, *, with_shape: bool = True) -> str:
    return f"{obj.colour} {obj.shape}" if with_shape else f"{obj.colour} object"


def colour_at(rng: random.Random) -> Item:
    scene = random_scene(rng)
    obj = rng.choice(scene.objects)
    return Item((scene,), f"What colour is the object at the {obj.position}?",
                ((f"colour at {obj.position} = {obj.colour}", COLOUR),), obj.colour)


def shape_at(rng: random.Random) -> Item:
    scene = random_scene(rng)
    obj = rng.choice(scene.objects)
    return Item((scene,), f"What shape is the object at the {obj.position}?",
                ((f"shape at {obj.position} = {obj.shape}", SHAPE),), obj.shape)


def size_at(rng: random.Random) -> Item:
    scene = random_scene(rng)
    obj = rng.choice(scene.objects)
    return Item((scene,), f"Is the object at the {obj.position} small or big?",
                ((f"size at {obj.position} = {obj.size}", SIZE),), obj.size, ("small", "big"))


def count_colour(rng: random.Random) -> Item:
    scene = random_scene(rng, 2, 7)
    colour = rng.choice(list(COLOURS))
    n = len(scene.matching(colour))
    return Item((scene,), f"How many {colour} objects are there?", ((f"count {colour} = {n}", COUNTING),), str(n))


def count_shape(rng: random.Random) -> Item:
    scene = random_scene(rng, 2, 7)
    shape = rng.choice(SHAPES)
    n = len(scene.matching(shape=shape))
    return Item((scene,), f"How many {shape}s are there?", ((f"count {shape} = {n}", COUNTING),), str(n))


def exists(rng: random.Random) -> Item:
    scene = random_scene(rng)
    if rng.random() < 0.5:
        obj = rng.choice(scene.objects)
        colour, shape = obj.colour, obj.shape
    else:
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
    present = bool(scene.matching(colour, shape))
    return Item((scene,), f"Is there a {colour} {shape}?",
                ((f"any {colour} {shape} = {_yes_no(present)}", EXISTENCE),), _yes_no(present), ("yes", "no"))


def locate(rng: random.Random) -> Item:
    scene = random_scene(rng)
    candidates = [o for o in scene.objects if _unique(scene, o)]
    if not candidates:
        raise Retry
    obj = rng.choice(candidates)
    return Item((scene,), f"Where is the {_name(obj)}?",
                ((f"{_name(obj)} at {obj.position}", LOCALISATION),), obj.position)


def scan(rng: random.Random) -> Item:
    """Read every object in order: dense perception supervision, like a captioning stage."""
    scene = random_scene(rng, 2, 6)
    steps = tuple((f"{_name(o)} at {o.position}", LOCALISATION) for o in scene.objects)
    last = scene.objects[-1]
    return Item((scene,), "Which object comes last, reading from top left to bottom right?", steps, _name(last))


def shape_of_colour(rng: random.Random) -> Item:
    scene = random_scene(rng)
    candidates = [o for o in scene.objects if _unique(scene, o, by_shape=False)]
    if not candidates:
        raise Retry
    obj = rng.choice(candidates)
    return Item((scene,), f"What shape is the {obj.colour} object?",
                ((f"{_name(obj, with_shape=False)} at {obj.position}", LOCALISATION),
                 (f"shape at {obj.position} = {obj.shape}", SHAPE)), obj.shape)


def same_colour(rng: random.Random) -> Item:
    scene = random_scene(rng, 3, 6)
    a, b = rng.sample(scene.objects, 2)
    same = a.colour == b.colour
    return Item((scene,), f"Do the objects at the {a.position} and the {b.position} have the same colour?",
                ((f"colour at {a.position} = {a.colour}", COLOUR),
                 (f"colour at {b.position} = {b.colour}", COLOUR),
                 (f"{a.colour} same as {b.colour} = {_yes_no(same)}", COMPARISON)), _yes_no(same), ("yes", "no"))


def bigger(rng: random.Random) -> Item:
    scene = random_scene(rng, 3, 6)
    a, b = rng.sample(scene.objects, 2)
    flag = a.size == "big" and b.size == "small"
    return Item((scene,), f"Is the object at the {a.position} bigger than the object at the {b.position}?",
                ((f"size at {a.position} = {a.size}", SIZE),
                 (f"size at {b.position} = {b.size}", SIZE),
                 (f"{a.size} bigger than {b.size} = {_yes_no(flag)}", COMPARISON)), _yes_no(flag), ("yes", "no"))


RELATIONS = ("left of", "right of", "above", "below")


def _holds(relation: str, a: WorldObject, b: WorldObject) -> bool:
    return {
        "left of": a.column < b.column,
        "right of": a.column > b.column,
        "above": a.row < b.row,
        "below": a.row > b.row,
    }[relation]


def relation_at(rng: random.Random) -> Item:
    scene = random_scene(rng, 3, 6)
    a, b = rng.sample(scene.objects, 2)
    relation = rng.choice(RELATIONS)
    flag = _holds(relation, a, b)
    return Item((scene,), f"Is the object at the {a.position} {relation} the object at the {b.position}?",
                ((f"{a.position} {relation} {b.position} = {_yes_no(flag)}", SPATIAL_RELATION),),
                _yes_no(flag), ("yes", "no"))


def spot_difference(rng: random.Random) -> Item:
    first = random_scene(rng)
    second, obj, _ = with_one_change(rng, first)
    return Item((first, second), "Where do the two images differ?",
                ((f"change at {obj.position}", DIFFERENCE),), obj.position)


def what_changed(rng: random.Random) -> Item:
    first = random_scene(rng)
    second, obj, attribute = with_one_change(rng, first)
    return Item((first, second), "What changed between the two images: colour, shape or size?",
                ((f"change at {obj.position}", DIFFERENCE), (f"{attribute} changed", DIFFERENCE)),
                attribute, ("colour", "shape", "size"))


def more_shapes(rng: random.Random) -> Item:
    scene = random_scene(rng, 2, 7)
    s1, s2 = rng.sample(SHAPES, 2)
    n1, n2 = len(scene.matching(shape=s1)), len(scene.matching(shape=s2))
    return Item((scene,), f"Are there more {s1}s than {s2}s?",
                ((f"count {s1} = {n1}", COUNTING), (f"count {s2} = {n2}", COUNTING),
                 (f"{n1} more than {n2} = {_yes_no(n1 > n2)}", COMPARISON)), _yes_no(n1 > n2), ("yes", "no"))


# Target-task families: each composes skills, at least one of them rare for the student.

def compare_counts(rng: random.Random) -> Item:
    scene = random_scene(rng, 2, 7)
    c1, c2 = rng.sample(list(COLOURS), 2)
    n1, n2 = len(scene.matching(c1)), len(scene.matching(c2))
    return Item((scene,), f"Are there more {c1} objects than {c2} objects?",
                ((f"count {c1} = {n1}", COUNTING), (f"count {c2} = {n2}", COUNTING),
                 (f"{n1} more than {n2} = {_yes_no(n1 > n2)}", COMPARISON)), _yes_no(n1 > n2), ("yes", "no"))


def relative_position(rng: random.Random) -> Item:
    scene = random_scene(rng, 3, 6)
    candidates = [o for o in scene.objects if _unique(scene, o)]
    if len(candidates) < 2:
        raise Retry
    a, b = rng.sample(candidates, 2)
    relation = rng.choice(RELATIONS)
    flag = _holds(relation, a, b)
    return Item((scene,), f"Is the {_name(a)} {relation} the {_name(b)}?",
                ((f"{_name(a)} at {a.position}", LOCALISATION), (f"{_name(b)} at {b.position}", LOCALISATION),
                 (f"{a.position} {relation} {b.position} = {_yes_no(flag)}", SPATIAL_RELATION)),
                _yes_no(flag), ("yes", "no"))


def colour_count(rng: random.Random) -> Item:
    scene = random_scene(rng, 3, 7)
    candidates = [o for o in scene.objects if len(scene.matching(shape=o.shape)) == 1]
    if not candidates:
        raise Retry
    obj = rng.choice(candidates)
    n = len(scene.matching(obj.colour))
    return Item((scene,), f"How many objects have the colour of the {obj.shape}?",
                ((f"{obj.shape} at {obj.position}", LOCALISATION), (f"colour at {obj.position} = {obj.colour}", COLOUR),
                 (f"count {obj.colour} = {n}", COUNTING)), str(n))


def changed_relation(rng: random.Random) -> Item:
    first = random_scene(rng, 3, 6)
    second, obj, _ = with_one_change(rng, first)
    other = rng.choice([o for o in first.objects if o.cell != obj.cell])
    relation = rng.choice(RELATIONS)
    flag = _holds(relation, obj, other)
    return Item((first, second), f"Is the object that changed {relation} the object at the {other.position}?",
                ((f"change at {obj.position}", DIFFERENCE),
                 (f"{obj.position} {relation} {other.position} = {_yes_no(flag)}", SPATIAL_RELATION)),
                _yes_no(flag), ("yes", "no"))


# The crossover world (v2): a target whose steps need two different skills in sequence (find the
# big object by its size, read its colour, count that colour), and a pool family that teaches the
# size step on its own. Two students, one rare in each skill, then need different data for it.

def _one_big(rng: random.Random, min_objects: int, max_objects: int) -> tuple[Scene, WorldObject]:
    """A scene in which exactly one object is big, so "the big object" names one object."""
    scene = random_scene(rng, min_objects, max_objects)
    chosen = rng.randrange(len(scene.objects))
    objects = tuple(replace(o, size="big" if k == chosen else "small") for k, o in enumerate(scene.objects))
    return Scene(objects), objects[chosen]


def find_big(rng: random.Random) -> Item:
    scene, big = _one_big(rng, 2, 6)
    return Item((scene,), "Where is the big object?", ((f"big object at {big.position}", SIZE),), big.position)


def big_colour_count(rng: random.Random) -> Item:
    scene, big = _one_big(rng, 3, 7)
    n = len(scene.matching(big.colour))
    return Item((scene,), "How many objects have the colour of the big object?",
                ((f"big object at {big.position}", SIZE), (f"colour at {big.position} = {big.colour}", COLOUR),
                 (f"count {big.colour} = {n}", COUNTING)), str(n))


Program = Callable[[random.Random], Item]

POOL_FAMILIES: dict[str, Program] = {
    "colour-at": colour_at,
    "shape-at": shape_at,
    "size-at": size_at,
    "count-colour": count_colour,
    "count-shape": count_shape,
    "exists": exists,
    "locate": locate,
    "scan": scan,
    "shape-of-colour": shape_of_colour,
    "same-colour": same_colour,
    "bigger": bigger,
    "relation-at": relation_at,
    "spot-difference": spot_difference,
    "what-changed": what_changed,
    "more-shapes": more_shapes,
}

TARGET_FAMILIES: dict[str, Program] = {
    "compare-counts": compare_counts,
    "relative-position": relative_position,
    "colour-count": colour_count,
    "changed-relation": changed_relation,
}

# The first world's families, in the order its tokenizer learns them (a student's tokenizer
# depends on this order: keep it).
FAMILIES: dict[str, Program] = {**POOL_FAMILIES, **TARGET_FAMILIES}

CROSSOVER_POOL_FAMILIES: dict[str, Program] = {"find-big": find_big}
CROSSOVER_TARGET_FAMILIES: dict[str, Program] = {"big-colour-count": big_colour_count}

ALL_FAMILIES: dict[str, Program] = {**FAMILIES, **CROSSOVER_POOL_FAMILIES, **CROSSOVER_TARGET_FAMILIES}


def generate(family: str, rng: random.Random) -> Item:
    """Run a family's program until it draws a scene that can carry its question."""
    program = ALL_FAMILIES[family]
    while True:
        try:
            return program(rng)
        except Retry:
            continue


__all__ = ["ALL_FAMILIES", "CROSSOVER_POOL_FAMILIES", "CROSSOVER_TARGET_FAMILIES", "FAMILIES", "POOL_FAMILIES", "POSITIONS",
           "SKILL_DESCRIPTIONS", "TARGET_FAMILIES", "Item", "generate"]
