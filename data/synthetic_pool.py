"""A synthetic instruction pool of any size whose texts are mostly distinct, for benchmarks at real scale.

The built-in world's pool collapses to a few thousand distinct documents (its
questions are templated over a small vocabulary), so it cannot show what
indexing a real pool costs. Rows here are LLaVA rows as users' pools hold
them: a question about one image and an answer, over 12 skill families; the
wording, objects, attributes, names and numbers are drawn per row, so texts
are distinct (measured: 97.6% of the first 100,000 rows). Each row carries its
family's skills in the `gaptune` key, so retrieval quality can be scored
against the truth. A row depends only on (seed, index): any slice can be
regenerated and the stream needs no memory.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

OBJECTS = ("cat", "dog", "car", "bicycle", "cup", "chair", "tree", "bird", "book", "lamp", "boat", "horse", "phone",
           "bottle", "clock", "umbrella", "apple", "truck", "kite", "bench", "sheep", "laptop", "vase", "train")
COLOURS = ("red", "blue", "green", "yellow", "black", "white", "orange", "purple", "brown", "grey", "pink")
PLACES = ("kitchen", "street", "park", "office", "beach", "forest", "garage", "classroom", "market", "harbour")
NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo")
RELATIONS = ("to the left of", "to the right of", "above", "below", "behind", "in front of", "next to")
ADJECTIVES = ("", "small ", "large ", "old ", "new ", "wooden ", "shiny ", "broken ", "tall ", "striped ", "plastic ",
              "metal ", "tiny ", "dusty ")
TIMES = ("", "", " It was taken in the morning.", " It was taken at night.", " The light is dim.",
         " It is raining.", " The image is a bit blurry.", " This is a close-up.")
OPENERS = ("", "Look at the image. ", "Based on the picture, ", "In this photo, ", "Answer briefly: ",
           "Using the image, ", "Please tell me: ")

# family -> (skills, question templates, answer kind)
FAMILIES: dict[str, tuple[list[str], list[str], str]] = {
    "counting": (["counting"], ["how many {colour} {obj}s are in the {place}?", "count the {obj}s near the {obj2}.",
                                "what is the number of {obj}s {name} can see?"], "number"),
    "colour": (["colour"], ["what colour is the {obj} {relation} the {obj2}?", "which colour does {name}'s {obj} have?"],
               "colour"),
    "spatial": (["spatial relation"], ["is the {obj} {relation} the {obj2}?", "where is the {colour} {obj} relative "
                                       "to the {obj2}?"], "yesno"),
    "text": (["text reading"], ["what does the sign above the {obj} in the {place} say?", "read the label on "
                                "{name}'s {colour} {obj}."], "word"),
    "chart": (["chart reading"], ["in the chart, what value does the {colour} bar for {name} show?", "which month "
                                  "has the highest {obj} sales in the chart?"], "number"),
    "comparison": (["comparison", "counting"], ["are there more {obj}s than {obj2}s in the {place}?",
                                               "does {name} have fewer {obj}s than {name2}?"], "yesno"),
    "size": (["size"], ["which is bigger, the {colour} {obj} or the {obj2}?", "is the {obj} {relation} the {obj2} the "
                        "largest object?"], "object"),
    "shape": (["shape"], ["what shape is the {colour} object {relation} the {obj}?", "is the {obj} on the table "
                          "round or square?"], "shape"),
    "action": (["action recognition"], ["what is {name} doing with the {obj} in the {place}?", "what is the {obj2} "
                                        "{relation} the {obj} doing?"], "action"),
    "scene": (["scene recognition"], ["what kind of place is shown with the {colour} {obj}?", "where was this photo of "
                                      "{name} and the {obj} taken?"], "place"),
    "arithmetic": (["arithmetic", "counting"], ["if {name} buys {n} more {obj}s, how many are there?", "how many {obj}s "
                                               "are left if {n} of the {colour} ones leave?"], "number"),
    "caption": (["captioning"], ["describe the {place} scene with the {obj} in one sentence.", "give a short caption "
                                 "for {name}'s photo of the {colour} {obj}."], "sentence"),
}
ANSWERS = {
    "number": lambda r: str(r.randint(0, 40)), "colour": lambda r: r.choice(COLOURS),
    "yesno": lambda r: r.choice(("yes", "no")), "word": lambda r: r.choice(("EXIT", "OPEN", "SALE", "STOP", "CAFE")),
    "object": lambda r: "the " + r.choice(OBJECTS), "shape": lambda r: r.choice(("round", "square", "triangular")),
    "action": lambda r: r.choice(("holding it", "cleaning it", "carrying it", "looking at it", "repairing it")),
    "place": lambda r: "a " + r.choice(PLACES),
    "sentence": lambda r: f"A {r.choice(COLOURS)} {r.choice(OBJECTS)} in a {r.choice(PLACES)} beside a "
                          f"{r.choice(OBJECTS)}.",
}
IMAGES = 16  # distinct image files the rows point at (what an import checks per row)


def synthetic_row(seed: int, index: int, *, image: str | None) -> dict[str, object]:
    """Row `index` of the pool of `seed`: a LLaVA row with the family's skills in the gaptune key."""
    rng = random.Random(f"{seed}:{index}")
    family = rng.choice(sorted(FAMILIES))
    skills, templates, kind = FAMILIES[family]
    fill = {"obj": rng.choice(ADJECTIVES) + rng.choice(OBJECTS), "obj2": rng.choice(ADJECTIVES) + rng.choice(OBJECTS),
            "colour": rng.choice(COLOURS),
            "place": rng.choice(PLACES), "name": rng.choice(NAMES), "name2": rng.choice(NAMES),
            "relation": rng.choice(RELATIONS), "n": rng.randint(2, 30)}
    question = rng.choice(OPENERS) + rng.choice(templates).format(**fill)
    question = question[0].upper() + question[1:] + rng.choice(TIMES)
    answer = ANSWERS[kind](rng)
    row: dict[str, object] = {
        "id": f"syn-{seed}-{index:07d}",
        "conversations": [{"from": "human", "value": ("<image>\n" if image else "") + question},
                          {"from": "gpt", "value": answer}],
        "gaptune": {"answer": answer, "skills": skills, "task": family, "source": "synthetic"},
    }
    if image:
        row["image"] = image
    return row


def synthetic_rows(size: int, *, seed: int = 0, images: bool = True) -> Iterator[dict[str, object]]:
    for index in range(size):
        yield synthetic_row(seed, index, image=f"images/{index % IMAGES:02d}.png" if images else None)


def write_synthetic_pool(path: Path, size: int, *, seed: int = 0) -> Path:
    """`size` rows as LLaVA JSONL at `path`, with the images they point at in `path.parent / images`."""
    folder = path.parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(IMAGES):
        Image.new("RGB", (32, 32), (16 * k, 255 - 16 * k, 128)).save(folder / f"{k:02d}.png")
    with path.open("w", encoding="utf-8") as handle:
        for row in synthetic_rows(size, seed=seed):
            handle.write(json.dumps(row) + "\n")
    return path
