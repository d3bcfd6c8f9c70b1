"""`gaptune pool import` on real files: bad rows set aside with their reasons, a killed import resumed exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from gaptune.cli import app
from gaptune.data import pool_import
from gaptune.data.errors import DataError
from gaptune.data.llava_format import RowProblem, RowSamples
from gaptune.data.loaders import load_samples
from gaptune.data.pool_import import POOL_FILE, REJECTS_FILE, import_pool
from gaptune.data.synthetic_pool import synthetic_row, synthetic_rows, write_synthetic_pool


def _row(i: int, image: str | None = "ok.png", answer: str = "three") -> dict[str, object]:
    row: dict[str, object] = {"id": f"s{i}", "conversations": [
        {"from": "human", "value": ("<image>\n" if image else "") + f"How many cats are in picture {i}?"},
        {"from": "gpt", "value": answer}]}
    if image:
        row["image"] = image
    return row


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """40 good rows (images, and text-only), and one of each kind of bad row among them."""
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    lines = [json.dumps(_row(i, "ok.png" if i % 2 else None)) for i in range(40)]
    lines[5] = '{"id": "s5", "conversations": ['  # cut short: bad JSON
    lines[11] = json.dumps(_row(11, "missing.png"))
    lines[17] = json.dumps(_row(17, "broken.png"))
    lines[23] = json.dumps(_row(23, answer=" "))
    lines[29] = json.dumps(_row(3))  # s3 again
    path = tmp_path / "pool.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_rows_are_rejected_with_file_row_and_reason_and_the_rest_is_a_readable_pool(
        source: Path, tmp_path: Path) -> None:
    report = import_pool(source, tmp_path / "out", progress=False)
    assert (report.rows, report.samples, report.rejected, report.complete) == (40, 35, 5, True)
    rejects = [json.loads(line) for line in (tmp_path / "out" / REJECTS_FILE).read_text().splitlines()]
    assert [(r["row"], r["field"]) for r in rejects] == [
        (6, "<json>"), (12, "image"), (18, "image[0]"), (24, "conversations[1].value"), (30, "id")]
    assert all(r["file"] == str(source) and r["unit"] == "line" for r in rejects)
    assert "does not exist" in rejects[1]["reason"] and "cannot be read as an image" in rejects[2]["reason"]
    assert "duplicate id 's3'" in rejects[4]["reason"]
    assert report.reasons == {"<json>": 1, "image": 1, "image[0]": 1, "conversations[1].value": 1, "id": 1}
    imported = load_samples(tmp_path / "out" / POOL_FILE).samples
    assert [s.id for s in imported] == [f"s{i}" for i in range(40) if i not in (5, 11, 17, 23, 29)]
    assert imported[1].images == [str(source.parent / "ok.png")] and imported[0].images == []
    lenient = load_samples(source, strict=False).samples  # what a run reads from the raw file: the corrupt image too
    assert imported == [s for s in lenient if s.id != "s17"] and len(lenient) == 36


def test_a_killed_import_resumes_where_it_was_and_ends_equal_to_an_uninterrupted_one(
        source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = import_pool(source, tmp_path / "whole", progress=False, chunk=4)
    real = pool_import.iter_rows

    def killed_after(n: int) -> object:
        def rows(path: Path | str, image_root: Path | None = None) -> Iterator[RowSamples | RowProblem]:
            for k, row in enumerate(real(path, image_root)):
                if k == n:
                    raise KeyboardInterrupt  # a kill: rows after the last commit were written, not committed
                yield row
        return rows

    monkeypatch.setattr(pool_import, "iter_rows", killed_after(14))
    with pytest.raises(KeyboardInterrupt):
        import_pool(source, tmp_path / "resumed", progress=False, chunk=4)
    monkeypatch.setattr(pool_import, "iter_rows", killed_after(27))
    with pytest.raises(KeyboardInterrupt):
        import_pool(source, tmp_path / "resumed", progress=False, chunk=4)
    monkeypatch.setattr(pool_import, "iter_rows", real)
    resumed = import_pool(source, tmp_path / "resumed", progress=False, chunk=4)
    assert resumed.resumed_at_row == 24 and resumed.complete
    for name in (POOL_FILE, REJECTS_FILE):
        assert (tmp_path / "resumed" / name).read_bytes() == (tmp_path / "whole" / name).read_bytes()
    assert (resumed.rows, resumed.samples, resumed.rejected, resumed.reasons) == (
        whole.rows, whole.samples, whole.rejected, whole.reasons)


def test_a_finished_import_is_a_no_op_and_another_source_is_refused(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = import_pool(source, out, progress=False, limit=10)
    assert (first.rows, first.complete) == (10, False), "a limit leaves the import open"
    done = import_pool(source, out, progress=False)
    assert (done.rows, done.resumed_at_row, done.complete) == (40, 10, True)
    before = (out / POOL_FILE).read_bytes()
    again = import_pool(source, out, progress=False)
    assert again.model_dump(exclude={"resumed_at_row"}) == done.model_dump(exclude={"resumed_at_row"})
    assert (out / POOL_FILE).read_bytes() == before
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(_row(0, None)) + "\n")
    with pytest.raises(DataError, match="holds an import of another source"):
        import_pool(other, out, progress=False)


def test_the_command_prints_counts_and_the_setting_to_use(source: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pool", "import", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "40 rows -> 35 samples" in result.output and "5 rejected" in result.output
    assert f"pool.path={tmp_path / 'out' / POOL_FILE}" in result.output.replace("\n", "")


def test_the_synthetic_pool_is_mostly_distinct_reproducible_by_row_and_imports_whole(tmp_path: Path) -> None:
    rows = list(synthetic_rows(5000, seed=3))
    questions = {row["conversations"][0]["value"] for row in rows}  # type: ignore[index]
    assert len(questions) / len(rows) > 0.95, "a scale benchmark needs distinct documents"
    assert synthetic_row(3, 4321, image=rows[4321]["image"]) == rows[4321]  # type: ignore[arg-type]
    assert len({tuple(row["gaptune"]["skills"]) for row in rows}) == 12  # type: ignore[index]
    source = write_synthetic_pool(tmp_path / "syn" / "pool.jsonl", 2000)
    report = import_pool(source, tmp_path / "out", progress=False)
    assert (report.samples, report.rejected) == (2000, 0)
    imported = load_samples(tmp_path / "out" / POOL_FILE).samples
    assert all(s.skills and s.images and Path(s.images[0]).is_file() for s in imported)
