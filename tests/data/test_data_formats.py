"""LLaVA format: exact round trips of our samples, and the shapes of real LLaVA-665K rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from gaptune.data.llava_format import GAPTUNE_KEY, RowSamples, llava_row, read_llava, write_llava
from gaptune.data.loaders import load_samples
from gaptune.data.sample import RationaleStep, Sample
from gaptune.data.world.world import pool, task_split


def _png(path: Path, colour: tuple[int, int, int] = (200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), colour).save(path)
    return path


def _world_samples() -> list[Sample]:
    samples = list(pool(seed=3, size=60)) + task_split("changed-relation", "probe", seed=3, size=5)
    assert any(len(s.images) == 2 for s in samples), "the round trip must cover two-image samples"
    assert any(s.choices for s in samples) and any(not s.choices for s in samples)
    return samples


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_world_samples_round_trip_exactly(tmp_path: Path, suffix: str) -> None:
    samples = _world_samples()
    target = tmp_path / f"pool{suffix}"
    assert write_llava(samples, target) == len(samples)
    loaded = load_samples(target)
    assert loaded.skipped == 0
    assert loaded.samples == samples


def test_export_row_shape_for_a_two_image_sample_with_steps() -> None:
    sample = next(s for s in pool(seed=0, size=200) if len(s.images) == 2 and s.steps)
    row = llava_row(sample)
    assert row["id"] == sample.id
    assert row["image"] == sample.images
    human, gpt = row["conversations"]
    assert human == {"from": "human", "value": "<image>\n<image>\n" + sample.question}
    assert gpt == {"from": "gpt", "value": sample.target_text()}
    assert gpt["value"].endswith(f"answer: {sample.answer}")
    assert row[GAPTUNE_KEY]["steps"] == [{"text": s.text, "skill": s.skill} for s in sample.steps or []]
    assert row[GAPTUNE_KEY]["skills"] == sample.skills


def test_sample_without_steps_exports_the_bare_answer_and_round_trips(tmp_path: Path) -> None:
    image = _png(tmp_path / "images" / "a.png")
    samples = [
        Sample(id="q1", images=[str(image)], question="What colour?", answer="red", choices=["red", "blue"],
               skills=["colour"], task="t", source="mine"),
        Sample(id="q2", question="Say hi", answer="hi"),
        Sample(id="q3", images=[str(image)], question="Why?", answer="because",
               steps=[RationaleStep(text="look", skill="looking")]),
    ]
    target = tmp_path / "out" / "rows.json"
    write_llava(samples, target, image_root=tmp_path / "images")
    rows = json.loads(target.read_text())
    assert rows[0]["image"] == "a.png"
    assert rows[0]["conversations"][1]["value"] == "red"
    assert "image" not in rows[1]
    assert rows[2]["conversations"][1]["value"] == "look; answer: because"
    assert load_samples(target, image_root=tmp_path / "images").samples == samples


def test_interrupted_export_leaves_the_old_file_and_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "rows.jsonl"
    target.write_text("old content\n")

    def failing():
        yield Sample(id="a", question="q?", answer="x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_llava(failing(), target)
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.jsonl"]


def test_llava_665k_shaped_rows(tmp_path: Path) -> None:
    _png(tmp_path / "coco" / "train2017" / "000000033471.jpg")
    _png(tmp_path / "ocr_vqa" / "images" / "1.jpg")
    _png(tmp_path / "ocr_vqa" / "images" / "2.jpg")
    rows = [
        {"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "The back of the bus features an advertisement."},
            {"from": "human", "value": "Is the bus driving down the street or pulled off to the side?"},
            {"from": "gpt", "value": "The bus is driving down the street."},
        ]},
        {"id": "i6IyJda_0", "model": "", "conversations": [
            {"from": "human", "value": "How to tell if a customer segment is well segmented?"},
            {"from": "gpt", "value": "1. Homogeneity ..."},
        ]},
        {"id": 42, "image": ["ocr_vqa/images/1.jpg", "ocr_vqa/images/2.jpg"], "conversations": [
            {"from": "human", "value": "<image>\n<image>\nWhich book cover is red?"},
            {"from": "gpt", "value": "The first."},
        ]},
    ]
    data = tmp_path / "llava_v1_5_mix665k.json"
    data.write_text(json.dumps(rows))
    samples = load_samples(data, image_root=tmp_path).samples
    assert [s.id for s in samples] == ["000000033471", "000000033471#2", "000000033471#3", "i6IyJda_0", "42"]
    bus = str(tmp_path / "coco" / "train2017" / "000000033471.jpg")
    assert [s.images for s in samples[:3]] == [[bus]] * 3
    assert samples[0].question == "What are the colors of the bus in the image?"
    assert samples[1].question == "What feature can be seen on the back of the bus?"
    assert samples[2].answer == "The bus is driving down the street."
    assert samples[3].images == [] and samples[3].answer == "1. Homogeneity ..."
    assert samples[4].images == [str(tmp_path / "ocr_vqa" / "images" / "1.jpg"),
                                 str(tmp_path / "ocr_vqa" / "images" / "2.jpg")]
    assert samples[4].question == "Which book cover is red?"
    assert {s.source for s in samples} == {"llava_v1_5_mix665k.json"}
    assert all(s.steps is None and s.skills == [] for s in samples)


def test_image_paths_default_to_the_data_files_folder(tmp_path: Path) -> None:
    image = _png(tmp_path / "data" / "img" / "x.png")
    data = tmp_path / "data" / "rows.jsonl"
    data.write_text(json.dumps({"id": "a", "image": "img/x.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "red"}]}) + "\n")
    assert load_samples(data).samples[0].images == [str(image)]


def test_read_llava_streams_rows_of_jsonl(tmp_path: Path) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps({"id": str(i), "conversations": [
        {"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": "a"}]}) for i in range(3)))
    rows = read_llava(data)
    first = next(rows)
    assert isinstance(first, RowSamples) and first.samples[0].id == "0" and (first.row, first.unit) == (1, "line")
    assert [item.samples[0].question for item in rows if isinstance(item, RowSamples)] == ["q1", "q2"]
