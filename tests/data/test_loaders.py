"""load_samples: bad rows in strict and lenient mode, image folders, Hugging Face datasets."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from gaptune.data.loaders import DataError, load_samples


def _png(path: Path, colour: tuple[int, int, int] = (10, 200, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (5, 5), colour).save(path)
    return path


def _row(row_id: str, question: str = "<image>\nWhat colour?", answer: str = "green",
         image: str | list[str] | None = "ok.png") -> dict:
    row: dict = {"id": row_id, "conversations": [{"from": "human", "value": question},
                                                 {"from": "gpt", "value": answer}]}
    if image is not None:
        row["image"] = image
    return row


GOOD = _row("good")

# (row, field named in the error, words the message must contain)
BAD_ROWS = {
    "missing conversations": ({"id": "x", "image": "ok.png"}, "conversations", "missing"),
    "gpt turn missing": ({"id": "x", "image": "ok.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}]}, "conversations[1]", "gpt turn missing"),
    "too few placeholders": (_row("x", question="What colour?"), "conversations",
                             "0 <image> placeholder(s) but 1 image(s)"),
    "too many placeholders": (_row("x", question="<image>\n<image>\nWhat?"), "conversations",
                              "2 <image> placeholder(s) but 1 image(s)"),
    "missing image file": (_row("x", image="absent.png"), "image", "absent.png' does not exist"),
    "missing second image": (_row("x", question="<image><image>Q", image=["ok.png", "gone.png"]), "image[1]",
                             "does not exist"),
    "empty question": (_row("x", question="<image>\n  "), "conversations[0].value", "empty question"),
    "wrong role": ({"id": "x", "conversations": [{"from": "gpt", "value": "hi"}, {"from": "human", "value": "q"}]},
                   "conversations[0].from", "expected 'human'"),
}


def _write_jsonl(tmp_path: Path, lines: list[str]) -> Path:
    _png(tmp_path / "ok.png")
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_bad_jsonl_row_strict_names_file_line_and_field(tmp_path: Path, kind: str) -> None:
    row, field, words = BAD_ROWS[kind]
    path = _write_jsonl(tmp_path, [json.dumps(GOOD), json.dumps(row), json.dumps(GOOD)])
    with pytest.raises(DataError) as caught:
        load_samples(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 2, field {field!r}: ")
    assert words in message
    assert caught.value.problem is not None
    assert (caught.value.problem.row, caught.value.problem.field) == (2, field)


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_bad_jsonl_row_lenient_is_skipped_and_counted(tmp_path: Path, kind: str) -> None:
    row, field, _ = BAD_ROWS[kind]
    path = _write_jsonl(tmp_path, [json.dumps(GOOD), json.dumps(row), json.dumps(_row("good2"))])
    result = load_samples(path, strict=False)
    assert [s.id for s in result.samples] == ["good", "good2"]
    assert result.skipped == 1
    assert [(p.file, p.row, p.unit, p.field) for p in result.problems] == [(str(path), 2, "line", field)]


def test_invalid_json_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path, [json.dumps(GOOD), "", '{"id": "broken", ', json.dumps(_row("g3"))])
    with pytest.raises(DataError, match=rf"^{path} line 3, field '<json>': invalid JSON"):
        load_samples(path)
    result = load_samples(path, strict=False)
    assert [s.id for s in result.samples] == ["good", "g3"]
    assert result.skipped == 1 and result.problems[0].row == 3


def test_json_list_rows_are_named_by_index_and_all_bad_rows_counted(tmp_path: Path) -> None:
    _png(tmp_path / "ok.png")
    rows = [GOOD, BAD_ROWS["missing conversations"][0], _row("g2"), BAD_ROWS["missing image file"][0]]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match=rf"^{path} index 1, field 'conversations': missing"):
        load_samples(path)
    result = load_samples(path, strict=False)
    assert [s.id for s in result.samples] == ["good", "g2"]
    assert result.skipped == 2
    assert [(p.row, p.unit, p.field) for p in result.problems] == [(1, "index", "conversations"),
                                                                   (3, "index", "image")]


def test_format_is_read_from_content_not_suffix(tmp_path: Path) -> None:
    _png(tmp_path / "ok.png")
    jsonl_named_json = tmp_path / "pool.json"
    jsonl_named_json.write_text(json.dumps(GOOD) + "\n" + json.dumps(_row("g2")) + "\n")
    assert [s.id for s in load_samples(jsonl_named_json).samples] == ["good", "g2"]
    list_named_txt = tmp_path / "pool.txt"
    list_named_txt.write_text(json.dumps([GOOD]))
    assert [s.id for s in load_samples(list_named_txt).samples] == ["good"]


def test_whole_file_errors_are_raised_even_when_lenient(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": 1},')
    with pytest.raises(DataError, match=rf"^{broken}: invalid JSON at line 1"):
        load_samples(broken, strict=False)
    not_a_list = tmp_path / "object.json"
    not_a_list.write_text('"text"')
    with pytest.raises(DataError, match="not LLaVA JSON or JSONL"):
        load_samples(not_a_list, strict=False)
    with pytest.raises(DataError, match="no such file or folder"):
        load_samples(tmp_path / "absent.jsonl")
    (tmp_path / "empty_folder").mkdir()
    with pytest.raises(DataError, match="metadata.jsonl"):
        load_samples(tmp_path / "empty_folder")


def test_imagefolder_with_metadata_jsonl(tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    red = _png(folder / "train" / "red.png", (255, 0, 0))
    blue = _png(folder / "train" / "blue.png", (0, 0, 255))
    lines = [
        {"file_name": "train/red.png", "question": "What colour is it?", "answer": "red"},
        {"file_name": "train/blue.png", "question": "Pick the colour.", "answer": "b", "choices": ["red", "blue"],
         "id": "blue-1", "skills": ["colour"], "task": "colours", "extra_column": 7},
        {"file_name": "train/red.png", "question": "How many objects?", "answer": 1},
    ]
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    samples = load_samples(folder).samples
    assert [s.id for s in samples] == ["train/red.png#1", "blue-1", "train/red.png#3"]
    assert [s.images for s in samples] == [[str(red)], [str(blue)], [str(red)]]
    assert samples[1].choices == ["red", "blue"] and samples[1].skills == ["colour"] and samples[1].task == "colours"
    assert samples[2].answer == "1"
    assert {s.source for s in samples} == {"shapes"}
    with Image.open(samples[1].images[0]) as image:
        assert image.getpixel((0, 0)) == (0, 0, 255)


def test_imagefolder_bad_rows(tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    _png(folder / "a.png")
    lines = [
        json.dumps({"file_name": "a.png", "question": "Q?", "answer": "x"}),
        json.dumps({"file_name": "missing.png", "question": "Q?", "answer": "x"}),
        json.dumps({"file_name": "a.png", "answer": "x"}),
        json.dumps({"file_name": "a.png", "question": " ", "answer": "x"}),
        "not json",
    ]
    (folder / "metadata.jsonl").write_text("\n".join(lines))
    metadata = folder / "metadata.jsonl"
    with pytest.raises(DataError, match=rf"^{metadata} line 2, field 'file_name': image file .*missing.png"):
        load_samples(folder)
    result = load_samples(folder, strict=False)
    assert len(result.samples) == 1 and result.skipped == 4
    assert [(p.row, p.field) for p in result.problems] == [(2, "file_name"), (3, "question"), (4, "question"),
                                                           (5, "<json>")]


def test_missing_datasets_extra_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(DataError, match=r"hf://org/pool:train: .*pip install gaptune\[hf-datasets\]"):
        load_samples("hf://org/pool:train")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "dataset_info.json").write_text("{}")
    with pytest.raises(DataError, match=r"pip install gaptune\[hf-datasets\]"):
        load_samples(saved)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is None, reason="the hf-datasets extra is not installed")
def test_saved_hugging_face_dataset(tmp_path: Path) -> None:
    import io

    import datasets
    import pyarrow

    def png_bytes(colour: tuple[int, int, int]) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (3, 3), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    def dataset(columns: dict, features: datasets.Features, name: str) -> datasets.Dataset:
        # Built from Arrow with an explicit fingerprint: Dataset.from_dict hashes
        # through dill, which fails on this machine's pyarrow (MonthDayNano).
        table = pyarrow.Table.from_pydict(features.encode_batch(columns), schema=features.arrow_schema)
        return datasets.Dataset(table, info=datasets.DatasetInfo(features=features), fingerprint=name)

    flat = dataset(
        {"question": ["What colour?", "", "Which?"], "answer": ["red", "x", "b"],
         "choices": [None, None, ["a1", "b1"]],
         "image": [{"bytes": png_bytes((255, 0, 0)), "path": None}] * 2 + [{"bytes": png_bytes((0, 0, 255)),
                                                                             "path": None}]},
        datasets.Features({"question": datasets.Value("string"), "answer": datasets.Value("string"),
                           "choices": datasets.Sequence(datasets.Value("string")), "image": datasets.Image()}),
        "flat")
    flat.save_to_disk(str(tmp_path / "flat"))
    images = tmp_path / "extracted"
    with pytest.raises(DataError, match=rf"{tmp_path / 'flat'} index 1, field 'question': empty question"):
        load_samples(tmp_path / "flat", image_root=images)
    result = load_samples(tmp_path / "flat", image_root=images, strict=False)
    assert result.skipped == 1
    assert [s.id for s in result.samples] == ["flat-0", "flat-2"]
    assert result.samples[1].choices == ["a1", "b1"]
    with Image.open(result.samples[0].images[0]) as image:
        assert image.getpixel((1, 1)) == (255, 0, 0)
    assert len(list(images.iterdir())) == 2

    conversational = datasets.DatasetDict({"train": dataset(
        {"id": ["c1"], "conversations": [[{"from": "human", "value": "<image>\nQ1"}, {"from": "gpt", "value": "A1"},
                                          {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]],
         "image": [{"bytes": png_bytes((0, 255, 0)), "path": None}]},
        datasets.Features({"id": datasets.Value("string"),
                           "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
                           "image": datasets.Image()}),
        "conv")})
    conversational.save_to_disk(str(tmp_path / "conv"))
    samples = load_samples(tmp_path / "conv", image_root=images).samples
    assert [(s.id, s.question, s.answer) for s in samples] == [("c1", "Q1", "A1"), ("c1#2", "Q2", "A2")]
    assert samples[0].images == samples[1].images and Path(samples[0].images[0]).parent == images


def test_data_errors_are_user_errors_and_say_what_to_fix(tmp_path: Path) -> None:
    from gaptune.data.errors import UserError

    path = _write_jsonl(tmp_path, [json.dumps(_row("x", image="absent.png"))])
    with pytest.raises(UserError, match=rf"^{path} line 1, field 'image': .*absent.png.*fix or remove this row"):
        load_samples(path)


@pytest.mark.parametrize("name", ["pool.jsonl", "pool.json"])
def test_a_file_that_is_not_text_is_a_data_error_naming_it(tmp_path: Path, name: str) -> None:
    binary = tmp_path / name
    binary.write_bytes(b"{\xff\xfe\x00garbage")
    with pytest.raises(DataError, match=rf"^{binary}: not UTF-8 text"):
        load_samples(binary, strict=False)


def test_an_imagefolder_whose_metadata_is_not_text_is_a_data_error(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    metadata = tmp_path / "folder" / "metadata.jsonl"
    metadata.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(DataError, match=rf"^{metadata}: not UTF-8 text"):
        load_samples(tmp_path / "folder", strict=False)
