"""Scenes of the built-in world: objects on a small grid, and their rendering.

Each object sits in its own grid cell, and a cell is exactly one vision patch
of the tiny student (8x8 pixels). Perception is therefore easy by design: the
prototypes showed that when locating objects is hard, every student shares
the same perception bottleneck and no choice of pool data can fix it. What is
left to learn are the reasoning skills (counting, relations, comparison...)
that data selection can teach.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageDraw

GRID = 3
CELL = 8
IMAGE_SIZE = GRID * CELL

COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230), "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "big")
POSITIONS = (
    "top left", "top", "top right",
    "left", "middle", "right",
    "bottom left", "bottom", "bottom right",
)
BACKGROUND = (0, 0, 0)


@dataclass(frozen=True)
class WorldObject:
    colour: str
    shape: str
    size: str
    cell: int  # index into POSITIONS, row-major

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    @property
    def row(self) -> int:
        return self.cell // GRID

    @property
    def column(self) -> int:
        return self.cell % GRID

    def has(self, colour: str | None = None, shape: str | None = None) -> bool:
        return (colour is None or self.colour == colour) and (shape is None or self.shape == shape)


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]

    def at(self, cell: int) -> WorldObject | None:
        return next((o for o in self.objects if o.cell == cell), None)

    def matching(self, colour: str | None = None, shape: str | None = None) -> list[WorldObject]:
        return [o for o in self.objects if o.has(colour, shape)]


def random_object(rng: random.Random, cell: int) -> WorldObject:
    return WorldObject(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(SIZES), cell)


def random_scene(rng: random.Random, min_objects: int = 2, max_objects: int = 6) -> Scene:
    count = rng.randint(min_objects, max_objects)
    cells = sorted(rng.sample(range(GRID * GRID), count))
    return Scene(tuple(random_object(rng, cell) for cell in cells))


def with_one_change(rng: random.Random, scene: Scene) -> tuple[Scene, WorldObject, str]:
    """A copy of `scene` where one object differs in exactly one attribute."""
    target = rng.choice(scene.objects)
    attribute = rng.choice(("colour", "shape", "size"))
    options = {"colour": list(COLOURS), "shape": list(SHAPES), "size": list(SIZES)}[attribute]
    new_value = rng.choice([v for v in options if v != getattr(target, attribute)])
    change: dict[str, Any] = {attribute: new_value}
    changed = replace(target, **change)
    objects = tuple(changed if o is target else o for o in scene.objects)
    return Scene(objects), target, attribute


def render(scene: Scene) -> Image.Image:
    """Draw a scene: one filled shape per occupied cell, big ones fill the cell, small ones half of it."""
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        extent = CELL - 1 if obj.size == "big" else CELL // 2
        left = obj.column * CELL + (CELL - extent) // 2
        top = obj.row * CELL + (CELL - extent) // 2
        box = (left, top, left + extent - 1, top + extent - 1)
        colour = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse(box, fill=colour)
        elif obj.shape == "square":
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) / 2, box[1])], fill=colour)
    return image
