"""The LLaVA conversation format: reading users' pools and writing ours.

Pools such as LLaVA-665K and Vision-Flan are lists of rows
``{"id", "image": path | [paths], "conversations": [{"from": "human"|"gpt", "value"}]}``,
stored as one JSON list or as JSONL. The rest of gaptune only sees `Sample`s,
so this module is the one place that knows the format.

Reading, decided once here:

- Every human/gpt pair of a row becomes one `Sample`: the first keeps the row's
  id, later ones get ``<id>#<n>`` with n the 1-based pair number (``x``,
  ``x#2``, ``x#3``). Each carries all of the row's images, since LLaVA places
  the images once, in the first human turn. The earlier turns are not carried
  along: a `Sample` is one question.
- ``<image>`` placeholders are counted over the whole conversation and must
  equal the number of images; they are removed from the question, because the
  student's processor places image tokens itself.
- Rows without "image" are text-only samples; rows without "id" get
  ``<file stem>-<row>``.
- Relative image paths are resolved against `image_root` (default: the data
  file's folder); ``world://`` references pass through; a missing file is a bad row.

Writing keeps everything a `Sample` has: the gpt value is `Sample.target_text()`
when the sample has gold steps (what the student is trained to write), and a
``"gaptune"`` key holds answer, choices, steps, skills, task and source, which
reading restores, so write -> read is an exact round trip.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from gaptune.data.atomic import open_atomic
from gaptune.data.errors import DataError
from gaptune.data.sample import Sample
from gaptune.data.world.world import WORLD_SCHEME

IMAGE_TOKEN = "<image>"
GAPTUNE_KEY = "gaptune"
TURN_ID_SEPARATOR = "#"
HUMAN, GPT = "human", "gpt"


class RowProblem(BaseModel):
    """Why one row of a data file could not become samples.

    `row` is a 1-based line for line-oriented files (unit "line") and a 0-based
    position for lists and datasets (unit "index"), matching what an editor or
    ``data[i]`` shows the user.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    row: int
    field: str
    message: str
    unit: Literal["line", "index"] = "index"

    def describe(self) -> str:
        return f"{self.file} {self.unit} {self.row}, field {self.field!r}: {self.message}"


class RowSamples(BaseModel):
    """The samples one row of a data file became, with where the row is (for duplicate-id messages).

    `unread` lists top-level fields that look like rationales or skills but sit
    where gaptune does not read them (see `RATIONALE_LIKE`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str
    row: int
    unit: Literal["line", "index"] = "index"
    samples: list[Sample]
    unread: list[str] = []

    def where(self) -> str:
        return f"{self.file} {self.unit} {self.row}"


# Fields users put rationales and skills in; gaptune reads them only under the row's "gaptune" key.
RATIONALE_LIKE = ("rationale", "rationales", "steps", "skills", "reasoning", "explanation", "chain_of_thought", "cot")


def unread_fields(row: object, *, read: Collection[str] = ()) -> list[str]:
    """The rationale-like top-level fields of `row` that its format does not `read`."""
    return [name for name in RATIONALE_LIKE if isinstance(row, dict) and name in row and name not in read]


class RowError(ValueError):
    """A bad row, before the caller adds which file and row it was."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def resolve_image(ref: object, *, field: str, image_root: Path) -> str:
    """An image reference as `Sample.images` holds it: an existing file's path, or a world ref."""
    if not isinstance(ref, str) or not ref.strip():
        raise RowError(field, f"expected an image path (a non-empty string), got {ref!r}")
    if ref.startswith(WORLD_SCHEME):
        return ref
    path = Path(ref) if Path(ref).is_absolute() else image_root / ref
    if not path.is_file():
        raise RowError(field, f"image file {str(path)!r} does not exist")
    return str(path)


def _images_of(row: dict[str, Any], image_root: Path) -> list[str]:
    value = row.get("image")
    if value is None:
        return []
    if isinstance(value, str):
        return [resolve_image(value, field="image", image_root=image_root)]
    if isinstance(value, list):
        return [resolve_image(ref, field=f"image[{k}]", image_root=image_root) for k, ref in enumerate(value)]
    raise RowError("image", f"expected a path or a list of paths, got {type(value).__name__}")


def _pairs(conversations: object) -> list[tuple[str, str]]:
    """The (human, gpt) value pairs of a conversation, checked for alternation."""
    if conversations is None:
        raise RowError("conversations", "missing; expected a list of {'from', 'value'} turns")
    if not isinstance(conversations, list) or not conversations:
        raise RowError("conversations", "expected a non-empty list of {'from', 'value'} turns")
    values: list[str] = []
    for k, turn in enumerate(conversations):
        expected = HUMAN if k % 2 == 0 else GPT
        if not isinstance(turn, dict):
            raise RowError(f"conversations[{k}]", "expected an object with 'from' and 'value'")
        if turn.get("from") != expected:
            raise RowError(f"conversations[{k}].from",
                           f"expected {expected!r} (turns alternate human, gpt), got {turn.get('from')!r}")
        value = turn.get("value")
        if not isinstance(value, str):
            raise RowError(f"conversations[{k}].value", f"expected a string, got {type(value).__name__}")
        values.append(value)
    if len(values) % 2:
        raise RowError(f"conversations[{len(values)}]", "gpt turn missing: the last human turn has no answer")
    return [(values[k], values[k + 1]) for k in range(0, len(values), 2)]


def _question(text: str, field: str) -> str:
    question = text.replace(IMAGE_TOKEN, "").strip()
    if not question:
        raise RowError(field, "empty question (nothing but <image> placeholders and whitespace)")
    return question


def _metadata(value: object) -> dict[str, Any]:
    """The sample fields our own export stored; checked against the gpt turn they describe."""
    if not isinstance(value, dict):
        raise RowError(GAPTUNE_KEY, "expected an object with answer, choices, steps, skills, task, source")
    unknown = set(value) - {"answer", "choices", "steps", "skills", "task", "source"}
    if unknown:
        raise RowError(GAPTUNE_KEY, f"unknown keys {sorted(unknown)}")
    if not isinstance(value.get("answer"), str):
        raise RowError(f"{GAPTUNE_KEY}.answer", "missing; expected a string")
    return value


def samples_from_row(row: object, *, default_id: str, image_root: Path, source: str) -> list[Sample]:
    """The samples of one LLaVA row; raises `RowError` naming the bad field."""
    if not isinstance(row, dict):
        raise RowError("<row>", f"expected a JSON object, got {type(row).__name__}")
    row_id = row.get("id", default_id)
    if isinstance(row_id, bool) or not isinstance(row_id, str | int) or str(row_id) == "":
        raise RowError("id", f"expected a non-empty string or integer, got {row_id!r}")
    images = _images_of(row, image_root)
    pairs = _pairs(row.get("conversations"))
    placeholders = sum(human.count(IMAGE_TOKEN) for human, _ in pairs)
    if placeholders != len(images):
        raise RowError("conversations", f"{placeholders} <image> placeholder(s) but {len(images)} image(s) given")
    metadata = row.get(GAPTUNE_KEY)
    if metadata is not None and len(pairs) != 1:
        raise RowError(GAPTUNE_KEY, f"describes one question, but the row has {len(pairs)} human/gpt pairs")
    samples = []
    for n, (human, gpt) in enumerate(pairs, start=1):
        field = f"conversations[{2 * n - 2}].value"
        sample_id = str(row_id) if n == 1 else f"{row_id}{TURN_ID_SEPARATOR}{n}"
        if not gpt.strip():
            raise RowError(f"conversations[{2 * n - 1}].value", "empty answer")
        fields: dict[str, Any] = {"answer": gpt, "source": source}
        if metadata is not None:
            fields = _metadata(metadata)
        try:
            sample = Sample(id=sample_id, images=images, question=_question(human, field), **fields)
        except ValidationError as error:
            first = error.errors()[0]
            name = ".".join(str(part) for part in first["loc"])
            raise RowError(f"{GAPTUNE_KEY}.{name}" if metadata is not None else name, first["msg"]) from error
        if metadata is not None and _gpt_text(sample) != gpt:
            raise RowError(f"conversations[{2 * n - 1}].value",
                           f"does not match the {GAPTUNE_KEY!r} metadata: expected {_gpt_text(sample)!r}")
        samples.append(sample)
    return samples


def _gpt_text(sample: Sample) -> str:
    return sample.target_text() if sample.steps else sample.answer


def llava_row(sample: Sample, *, image_root: Path | None = None) -> dict[str, Any]:
    """One sample as a LLaVA row; image paths under `image_root` are written relative to it."""
    images = [_relative(ref, image_root) for ref in sample.images]
    row: dict[str, Any] = {"id": sample.id}
    if images:
        row["image"] = images[0] if len(images) == 1 else images
    human = f"{IMAGE_TOKEN}\n" * len(images) + sample.question
    row["conversations"] = [{"from": HUMAN, "value": human}, {"from": GPT, "value": _gpt_text(sample)}]
    row[GAPTUNE_KEY] = {
        "answer": sample.answer,
        "choices": sample.choices,
        "steps": [step.model_dump() for step in sample.steps] if sample.steps is not None else None,
        "skills": sample.skills,
        "task": sample.task,
        "source": sample.source,
    }
    return row


def _relative(ref: str, image_root: Path | None) -> str:
    if image_root is None or ref.startswith(WORLD_SCHEME):
        return ref
    try:
        return Path(ref).relative_to(image_root).as_posix()
    except ValueError:
        return ref


def write_llava(samples: Iterable[Sample], path: str | Path, *, image_root: str | Path | None = None) -> int:
    """Write samples as LLaVA JSONL (".jsonl") or a JSON list (any other suffix); returns the row count.

    Rows stream to a temporary file beside `path`, renamed over it only when
    complete, so an interrupted export never leaves a truncated pool behind.
    """
    path = Path(path)
    root = Path(image_root) if image_root is not None else None
    jsonl = path.suffix == ".jsonl"
    count = 0
    with open_atomic(path) as out:
        if not jsonl:
            out.write("[")
        for sample in samples:
            text = json.dumps(llava_row(sample, image_root=root), ensure_ascii=False)
            if jsonl:
                out.write(text + "\n")
            else:
                out.write(("\n" if count == 0 else ",\n") + text)
            count += 1
        if not jsonl:
            out.write("\n]\n")
    return count


def _kind(path: Path) -> Literal["json", "jsonl"]:
    """JSON list or JSONL, from the first non-blank character; the suffix decides only when that is unclear."""
    with path.open("r", encoding="utf-8") as handle:
        while chunk := handle.read(4096):
            stripped = chunk.lstrip()
            if stripped:
                if stripped[0] == "[":
                    return "json"
                if stripped[0] == "{" or path.suffix == ".jsonl":
                    return "jsonl"
                raise DataError(f"{path}: not LLaVA JSON or JSONL: expected '[' (a JSON list) or '{{' "
                                f"(one JSON object per line) at the start, got {stripped[0]!r}")
    return "jsonl"


def read_llava(path: str | Path, *, image_root: str | Path | None = None) -> Iterator[RowSamples | RowProblem]:
    """Per row, its samples (and where the row is) or what is wrong with it; JSONL is streamed line by line.

    A JSON list must be parsed whole, but each raw row is released as soon as it
    is converted, so raw rows and samples are not both held in full. A file
    that cannot be read as text at all raises `DataError`.
    """
    path = Path(path)
    with unreadable_as_data_error(path):
        yield from _read_llava(path, image_root)


@contextmanager
def unreadable_as_data_error(path: Path) -> Iterator[None]:
    """A data file that is not UTF-8 text, or cannot be opened, is the user's to fix: say which and why."""
    try:
        yield
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (undecodable byte at offset {error.start}); expected LLaVA JSON "
                        "or JSONL (is it an image, an archive, or another encoding?)") from error
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error.strerror or error}); check the path and its permissions") \
            from error


def _read_llava(path: Path, image_root: str | Path | None) -> Iterator[RowSamples | RowProblem]:
    root = Path(image_root) if image_root is not None else path.parent
    root = root if root.is_absolute() else Path.cwd() / root
    source = path.name
    if _kind(path) == "jsonl":
        with path.open("r", encoding="utf-8") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as error:
                    yield RowProblem(file=str(path), row=line_number, field="<json>", unit="line",
                                     message=f"invalid JSON: {error.msg} at column {error.colno}")
                    continue
                yield _convert(row, path, line_number, "line", f"{path.stem}-{line_number}", root, source)
        return
    with path.open("r", encoding="utf-8") as handle:
        try:
            rows = json.load(handle)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: invalid JSON at line {error.lineno} column {error.colno}: {error.msg}") from error
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a JSON list of LLaVA rows, got a {type(rows).__name__}")
    for index in range(len(rows)):
        row, rows[index] = rows[index], None
        yield _convert(row, path, index, "index", f"{path.stem}-{index}", root, source)


def _convert(row: object, path: Path, number: int, unit: Literal["line", "index"], default_id: str,
             root: Path, source: str) -> RowSamples | RowProblem:
    try:
        samples = samples_from_row(row, default_id=default_id, image_root=root, source=source)
    except RowError as error:
        return RowProblem(file=str(path), row=number, field=error.field, message=error.message, unit=unit)
    return RowSamples(file=str(path), row=number, unit=unit, samples=samples, unread=unread_fields(row))


__all__ = [
    "GAPTUNE_KEY", "IMAGE_TOKEN", "RATIONALE_LIKE", "DataError", "RowError", "RowProblem", "RowSamples",
    "llava_row", "read_llava", "resolve_image", "samples_from_row", "unread_fields", "unreadable_as_data_error",
    "write_llava",
]
