"""What a user can fix is one line and exit 2, found before any work: config, YAML, run dir, keys, servers, data files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from teacher_server import FaultServer, free_port, scripted_reply
from typer.testing import CliRunner, Result

from gaptune.cli import app
from gaptune.data.llava_format import write_llava
from gaptune.data.world.world import task_split


def _invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={"GAPTUNE_DEBUG": None, **(env or {})}).invoke(app, list(args))


def _one_line_error(result: Result, *words: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _untouched(tmp_path: Path) -> list[str]:
    """Overrides that make any work visible: a fresh cache the first model or index would create."""
    return ["--run-dir", str(tmp_path / "run"), "--set", f"cache_dir={tmp_path / 'cache'}"]


def _assert_no_work(tmp_path: Path) -> None:
    assert not (tmp_path / "cache").exists(), "refused before the student was built or the pool indexed"
    assert not (tmp_path / "run").exists(), "and before the run directory was made: the fixed command can reuse it"


def test_every_bad_key_and_value_on_one_line() -> None:
    line = _one_line_error(_invoke("run", "--set", "max_rounds=abc", "--set", "budget=0", "--set", "roundz=3"),
                           "max_rounds: not an integer ('abc')", "budget: must be >= 1 (got 0)", "unknown key 'roundz'")
    assert line.count(";") == 2


def test_invalid_yaml_is_file_line_column(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("max_rounds: 2\nteacher:\n  critics: [{backend: reader}\n")
    _one_line_error(_invoke("run", str(config)), f"{config}:4:1: invalid YAML", "expected ',' or ']'")


def test_a_run_dir_that_is_a_file_is_refused_first(tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    _one_line_error(_invoke("run", "--run-dir", str(target), "--set", f"cache_dir={tmp_path / 'cache'}"),
                    f"--run-dir {target} is a file")
    assert target.read_text() == "mine" and not (tmp_path / "cache").exists()


def _critic(**fields: object) -> str:
    return "teacher.critics=[" + json.dumps({"backend": "openai", "model": "m", **fields}) + "]"


def test_the_openai_api_without_its_key_before_any_work(tmp_path: Path) -> None:
    result = _invoke("run", *_untouched(tmp_path), "--set", _critic(api_key_env="GT_UNSET_KEY_1"),
                     env={"GT_UNSET_KEY_1": None})
    _one_line_error(result, "teacher.critics[0]", "set the environment variable GT_UNSET_KEY_1")
    _assert_no_work(tmp_path)


def test_a_critic_where_nothing_listens_before_any_work(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    _one_line_error(_invoke("run", *_untouched(tmp_path), "--set", _critic(base_url=url)),
                    "teacher.critics[0]", url, "unreachable")
    _assert_no_work(tmp_path)


def test_a_judge_server_failing_every_request_before_any_work(tmp_path: Path) -> None:
    with FaultServer(scripted_reply, models_status=500) as server:
        judge = "teacher.judge=" + json.dumps({"backend": "openai", "model": "j", "base_url": server.base_url})
        _one_line_error(_invoke("run", *_untouched(tmp_path), "--set", judge), "teacher.judge", server.base_url,
                        "HTTP 500")
    _assert_no_work(tmp_path)


def test_a_missing_data_file_names_its_key(tmp_path: Path) -> None:
    result = _invoke("run", *_untouched(tmp_path), "--set", "task.world=null", "--set", f"task.probe={tmp_path}/p.jsonl",
                     "--set", f"task.val={tmp_path}/v.jsonl", "--set", f"task.test={tmp_path}/t.jsonl")
    _one_line_error(result, f"task.probe: {tmp_path}/p.jsonl does not exist")
    _assert_no_work(tmp_path)


def _task_files(tmp_path: Path, *, duplicate_probe_id: bool = False) -> list[str]:
    overrides = ["--set", "task.world=null"]
    for split in ("probe", "val", "test"):
        samples = task_split("compare-counts", split, size=4)
        if duplicate_probe_id and split == "probe":
            samples[3] = samples[3].model_copy(update={"id": samples[1].id})
        path = tmp_path / "task" / f"{split}.jsonl"
        write_llava(samples, path)
        overrides += ["--set", f"task.{split}={path}"]
    return overrides


def test_duplicate_ids_in_a_task_split_name_the_file_and_both_rows(tmp_path: Path) -> None:
    result = _invoke("run", *_untouched(tmp_path), *_task_files(tmp_path, duplicate_probe_id=True))
    _one_line_error(result, f"{tmp_path / 'task' / 'probe.jsonl'} line 4, field 'id'", "first seen at",
                    "probe.jsonl line 2")
    _assert_no_work(tmp_path)


def test_own_data_with_a_rationale_field_is_told_where_steps_go(tmp_path: Path) -> None:
    path = tmp_path / "probe.jsonl"
    rows = []
    for sample in task_split("compare-counts", "probe", size=3):
        rows.append({"id": sample.id, "image": sample.images[0], "rationale": "; ".join(s.text for s in sample.steps or []),
                     "conversations": [{"from": "human", "value": "<image>\n" + sample.question},
                                       {"from": "gpt", "value": sample.answer}]})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    files = ["--set", "task.world=null", "--set", f"task.probe={path}", "--set", f"task.val={path}", "--set",
             f"task.test={path}"]
    line = _one_line_error(_invoke("run", *_untouched(tmp_path), *files), "needs gold rationale steps",
                           "3 row(s) have a top-level 'rationale' field", "under the row's 'gaptune' key",
                           "docs/data.md")
    assert "teacher.critics" in line


def test_data_check_prints_what_it_reads_and_exits_2_on_rows_it_would_skip(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    write_llava(task_split("compare-counts", "probe", size=5), good)
    result = _invoke("data", "check", str(good))
    assert result.exit_code == 0, result.output
    assert "5 samples; 5 with gold rationale steps" in result.stdout and "skills: " in result.stdout
    lines = good.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], lines[0], "{not json", json.dumps({"id": "x", "rationale": "r", "conversations": [
        {"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A"}]})]) + "\n")
    result = _invoke("data", "check", str(bad))
    assert result.exit_code == 2
    assert f"skip {bad} line 2, field 'id': duplicate id" in result.stdout
    assert f"skip {bad} line 3, field '<json>': invalid JSON" in result.stdout
    assert "1 row(s) have a top-level 'rationale' field" in result.stdout
    _one_line_error(result, f"{bad}: 2 rows or duplicate ids would be skipped")


@pytest.mark.parametrize("doc_block", [1])
def test_the_documented_example_row_reads_as_documented(tmp_path: Path, doc_block: int) -> None:
    text = (Path(__file__).parents[2] / "docs" / "data.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```json\n")[1:]]
    row = json.loads(blocks[doc_block])
    (tmp_path / "images").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "q17.png")
    path = tmp_path / "doc.jsonl"
    path.write_text(json.dumps(row) + "\n")
    result = _invoke("data", "check", str(path))
    assert result.exit_code == 0, result.output
    assert "1 samples; 1 with gold rationale steps (4 steps)" in result.stdout
