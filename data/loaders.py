"""Loading users' data as `Sample`s: LLaVA JSON/JSONL, image folders, Hugging Face datasets.

One entry point, `load_samples`, so a config names a path and never a format.
Bad rows are the user's to fix, so in strict mode the first one stops the load
with a `DataError` naming file, row and field; a large pool is loaded
leniently instead, and every skipped row is counted and kept as a `RowProblem`,
never dropped silently.

Formats, decided by the path:

- ``hf://name[:split]``: a dataset on the Hugging Face Hub (split "train"
  unless named), through the optional ``datasets`` extra; rows without an id
  get ``name:split-<index>``.
- a folder with ``dataset_info.json``/``state.json`` or ``dataset_dict.json``:
  a dataset saved with ``save_to_disk`` (a saved DatasetDict must have one
  split, or point at the split's folder); rows without an id get
  ``<folder name>-<index>``.
- a folder with ``metadata.jsonl``: the Hugging Face imagefolder convention,
  one line per sample with ``file_name`` (relative to the folder), ``question``
  and ``answer``, optionally ``id``, ``choices``, ``skills``, ``task``, ``steps``.
- any file: LLaVA JSON (a list) or JSONL, told apart by content (see
  `gaptune.data.llava_format`).

Dataset rows are either LLaVA rows (a ``conversations`` column) or flat
question/answer rows like the imagefolder's. Their images are stored in the
dataset itself, so they are written once, named by content hash, under
`image_root` (default ``~/.cache/gaptune/images``): a `Sample` holds paths, not pixels.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, ValidationError

from gaptune.data.atomic import write_bytes_atomic
from gaptune.data.cache import cache_dir
from gaptune.data.errors import DataError
from gaptune.data.llava_format import (
    GAPTUNE_KEY,
    RowError,
    RowProblem,
    RowSamples,
    read_llava,
    resolve_image,
    samples_from_row,
    unread_fields,
    unreadable_as_data_error,
)
from gaptune.data.sample import Sample

HF_SCHEME = "hf://"
HF_EXTRA_HINT = "pip install gaptune[hf-datasets]"
IMAGEFOLDER_METADATA = "metadata.jsonl"
_SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json")
_SAVED_DATASET_DICT_MARKER = "dataset_dict.json"
_FLAT_FIELDS = ("id", "question", "answer", "choices", "steps", "skills", "task")


DuplicateIds = Literal["skip", "error"]


class LoadResult(BaseModel):
    """The samples loaded, how many rows were skipped and why, and notes on fields gaptune did not read.

    A row is skipped (lenient mode only) when it is malformed, and a sample when
    its id was seen before (the first one is kept); both are counted in
    `skipped` and described in `problems`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = ""
    samples: list[Sample]
    skipped: int
    problems: list[RowProblem]
    notes: list[str] = []

    def summary(self, *, shown: int = 20) -> dict[str, Any]:
        """What metrics.json and report.md say about the file: counts, the first `shown` problems, the notes."""
        return {"file": self.source, "samples": len(self.samples), "skipped": self.skipped,
                "problems": [problem.describe() for problem in self.problems[:shown]], "notes": self.notes}


def load_samples(path: str | Path, *, image_root: str | Path | None = None, strict: bool = True,
                 duplicate_ids: DuplicateIds = "skip") -> LoadResult:
    """Load every sample at `path`; see the module docstring for formats and for `image_root`.

    strict: the first bad row raises `DataError`; otherwise bad rows are skipped,
    counted in `skipped` and described in `problems`. A repeated id is an error
    in strict mode or with `duplicate_ids="error"`, naming both rows; otherwise
    the later sample is a counted skip.
    """
    samples: list[Sample] = []
    problems: list[RowProblem] = []
    first_seen: dict[str, RowSamples] = {}
    unread: Counter[str] = Counter()
    for item in iter_rows(path, image_root):
        if isinstance(item, RowProblem):
            if strict:
                raise DataError.from_problem(item)
            problems.append(item)
            continue
        unread.update(item.unread)
        for sample in item.samples:
            first = first_seen.setdefault(sample.id, item)
            if first is item:
                samples.append(sample)
                continue
            problem = RowProblem(file=item.file, row=item.row, unit=item.unit, field="id",
                                 message=f"duplicate id {sample.id!r}, first seen at {first.where()}")
            if strict or duplicate_ids == "error":
                raise DataError(f"{problem.describe()}: ids must be unique (fix one of the two rows)", problem)
            problems.append(problem)
    notes = [unread_note(path, name, count) for name, count in unread.items()]
    return LoadResult(source=str(path), samples=samples, skipped=len(problems), problems=problems, notes=notes)


def unread_note(path: str | Path, name: str, rows: int) -> str:
    """Where gaptune reads what a user put in a top-level field it ignores."""
    target = "skills" if name == "skills" else "steps"
    return (f"{path}: {rows} row(s) have a top-level {name!r} field, which gaptune does not read; gold rationale "
            f"steps and skills go under the row's {GAPTUNE_KEY!r} key ({GAPTUNE_KEY}.{target}; see docs/data.md)")


def iter_rows(path: str | Path, image_root: str | Path | None = None) -> Iterator[RowSamples | RowProblem]:
    """Per source row, its samples or what is wrong with it, streamed (see the module docstring for formats)."""
    text = str(path)
    if text.startswith(HF_SCHEME):
        name, _, split = text.removeprefix(HF_SCHEME).partition(":")
        datasets = _import_datasets(text)
        split = split or "train"
        dataset = datasets.load_dataset(name, split=split)
        return _dataset_rows(dataset, text, f"{name}:{split}", _cache_root(image_root))
    location = Path(path)
    if location.is_dir():
        if any((location / marker).is_file() for marker in (*_SAVED_DATASET_MARKERS, _SAVED_DATASET_DICT_MARKER)):
            return _dataset_rows(_saved_dataset(location), str(location), location.name, _cache_root(image_root))
        if (location / IMAGEFOLDER_METADATA).is_file():
            return _imagefolder_rows(location)
        raise DataError(f"{location}: a folder must hold an image folder's {IMAGEFOLDER_METADATA} or a dataset "
                        f"saved with save_to_disk ({', '.join(_SAVED_DATASET_MARKERS)}); found neither")
    if not location.is_file():
        raise DataError(f"{location}: no such file or folder")
    return read_llava(location, image_root=image_root)


def sample_from_flat_row(row: dict[str, Any], *, images: list[str], default_id: str, source: str) -> Sample:
    """A question/answer row (imagefolder metadata, a dataset row) as a `Sample`; raises `RowError`."""
    for required in ("question", "answer"):
        if row.get(required) is None:
            raise RowError(required, "missing")
    fields = {name: row[name] for name in _FLAT_FIELDS if row.get(name) is not None}
    fields.setdefault("id", default_id)
    for name in ("id", "answer"):
        if isinstance(fields[name], int | float) and not isinstance(fields[name], bool):
            fields[name] = str(fields[name])
    if isinstance(fields["question"], str) and not fields["question"].strip():
        raise RowError("question", "empty question")
    try:
        return Sample(images=images, source=source, **fields)
    except ValidationError as error:
        first = error.errors()[0]
        raise RowError(".".join(str(part) for part in first["loc"]), first["msg"]) from error


def _imagefolder_rows(folder: Path) -> Iterator[RowSamples | RowProblem]:
    metadata = folder / IMAGEFOLDER_METADATA
    with unreadable_as_data_error(metadata), metadata.open("r", encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise RowError("<row>", f"expected a JSON object, got {type(row).__name__}")
                image = resolve_image(row.get("file_name"), field="file_name", image_root=folder)
                sample = sample_from_flat_row(row, images=[image], default_id=f"{row['file_name']}#{line_number}",
                                              source=folder.name)
            except json.JSONDecodeError as error:
                yield _problem(metadata, line_number, "line", "<json>", f"invalid JSON: {error.msg} at column {error.colno}")
            except RowError as error:
                yield _problem(metadata, line_number, "line", error.field, error.message)
            else:
                yield RowSamples(file=str(metadata), row=line_number, unit="line", samples=[sample],
                                 unread=unread_fields(row, read=_FLAT_FIELDS))


def _problem(file: Path | str, row: int, unit: Literal["line", "index"], field: str, message: str) -> RowProblem:
    return RowProblem(file=str(file), row=row, unit=unit, field=field, message=message)


def _import_datasets(what: str) -> Any:
    try:
        import datasets
    except ImportError as error:
        raise DataError(f"{what}: reading Hugging Face datasets needs the optional extra: {HF_EXTRA_HINT}") from error
    return datasets


def _saved_dataset(folder: Path) -> Any:
    datasets = _import_datasets(str(folder))
    loaded = datasets.load_from_disk(str(folder))
    if isinstance(loaded, datasets.DatasetDict):
        if len(loaded) != 1:
            raise DataError(f"{folder}: a saved DatasetDict with splits {sorted(loaded)}; "
                            f"pass one split's folder, e.g. {folder / sorted(loaded)[0]}")
        return next(iter(loaded.values()))
    return loaded


def _cache_root(image_root: str | Path | None) -> Path:
    if image_root is not None:
        return Path(image_root)
    return cache_dir() / "images"


def _dataset_rows(dataset: Any, label: str, source: str, image_dir: Path) -> Iterator[RowSamples | RowProblem]:
    """Rows as Arrow data, so images arrive as stored bytes and are never decoded to pixels here.

    `source` ("name:split", or the saved folder's name) also prefixes ids of rows without one.
    """
    image_columns = _image_columns(dataset.features)
    index = 0
    for batch in dataset.with_format("arrow").iter(batch_size=256):
        for row in batch.to_pylist():
            try:
                unread = unread_fields(row, read=() if "conversations" in row else _FLAT_FIELDS)
                yield RowSamples(file=label, row=index, samples=_dataset_samples(row, index, image_columns, image_dir,
                                                                                 source), unread=unread)
            except RowError as error:
                yield _problem(label, index, "index", error.field, error.message)
            index += 1


def _image_columns(features: Any) -> list[str]:
    from datasets import Image as ImageFeature

    columns = []
    for name, feature in features.items():
        inner = getattr(feature, "feature", None)
        if isinstance(feature, ImageFeature) or isinstance(inner, ImageFeature):
            columns.append(name)
    return columns


def _dataset_samples(row: dict[str, Any], index: int, image_columns: list[str], image_dir: Path,
                     source: str) -> list[Sample]:
    images: list[str] = []
    for column in image_columns:
        value = row.pop(column)
        values = value if isinstance(value, list) else [] if value is None else [value]
        images.extend(_stored_image(item, f"{column}[{k}]" if isinstance(value, list) else column, image_dir)
                      for k, item in enumerate(values))
    default_id = f"{source}-{index}"
    if "conversations" in row:
        if images:
            row["image"] = images
        return samples_from_row(row, default_id=default_id, image_root=image_dir, source=source)
    return [sample_from_flat_row(row, images=images, default_id=default_id, source=source)]


def _stored_image(value: Any, field: str, image_dir: Path) -> str:
    """A dataset image as a file: its own path when the dataset only refers to one, else its bytes written once."""
    if not isinstance(value, dict) or not (value.get("bytes") or value.get("path")):
        raise RowError(field, "expected an image (bytes or a path)")
    data = value.get("bytes")
    if data is None:
        return resolve_image(value["path"], field=field, image_root=image_dir)
    try:
        with Image.open(io.BytesIO(data)) as image:
            suffix = (image.format or "img").lower()
    except UnidentifiedImageError as error:
        raise RowError(field, "image bytes are not a readable image") from error
    target = image_dir / f"{hashlib.sha256(data).hexdigest()[:40]}.{suffix}"
    if not target.is_file():
        write_bytes_atomic(target, data)
    return str(target)


__all__ = ["DataError", "DuplicateIds", "LoadResult", "RowProblem", "load_samples", "sample_from_flat_row"]
