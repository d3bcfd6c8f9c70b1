"""The command line's error handling: the user's mistakes exit 2 with one message, bugs exit 1, --debug shows tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from gaptune.cli import app


def torch_has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _invoke(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner(env={"GAPTUNE_DEBUG": None, **(env or {})}).invoke(app, list(args))


def _assert_user_error(result: Result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: "), result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)
    assert "Traceback" not in result.output


@pytest.fixture
def own_data_config(tmp_path: Path) -> Path:
    """A user's own LLaVA-format task without gold rationale steps (examples/own_data.yaml's shape), default teacher."""
    from gaptune.data.llava_format import write_llava
    from gaptune.data.world.world import task_split

    for split in ("probe", "val", "test"):
        samples = [s.model_copy(update={"steps": None}) for s in task_split("compare-counts", split, size=3)]
        write_llava(samples, tmp_path / "mytask" / f"{split}.jsonl")
    config = tmp_path / "own_data.yaml"
    config.write_text("task:\n  world: null\n" + "".join(
        f"  {split}: {tmp_path / 'mytask' / split}.jsonl\n" for split in ("probe", "val", "test")))
    return config


def test_own_data_without_gold_steps_is_one_message_and_exit_2(own_data_config: Path, tmp_path: Path) -> None:
    result = _invoke("run", str(own_data_config), "--run-dir", str(tmp_path / "run"))
    _assert_user_error(result, "needs gold rationale steps", "teacher.critics")
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback_of_a_user_error(own_data_config: Path, tmp_path: Path) -> None:
    result = _invoke("--debug", "run", str(own_data_config), "--run-dir", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "check_teacher_fits_data" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: ")
    from_env = _invoke("run", str(own_data_config), "--run-dir", str(tmp_path / "run2"), env={"GAPTUNE_DEBUG": "1"})
    assert from_env.exit_code == 2 and "Traceback" in from_env.stderr


@pytest.mark.slow  # starts the installed command in a process
def test_the_installed_command_prints_no_traceback(own_data_config: Path, tmp_path: Path) -> None:
    """The console script itself (as a user runs it), not only the app under CliRunner."""
    script = Path(sys.executable).parent / "gaptune"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gaptune.cli"]
    result = subprocess.run([*command, "run", str(own_data_config), "--run-dir", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=300,
                            env={k: v for k, v in os.environ.items() if k != "GAPTUNE_DEBUG"})
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines()[-1].startswith("error: the ")


def test_unknown_config_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("roundz: 3\n")
    _assert_user_error(_invoke("run", str(config)), "unknown key 'roundz'")
    _assert_user_error(_invoke("eval", "--set", "trainer.epochz=2"), "trainer.epochz")


def test_missing_config_file(tmp_path: Path) -> None:
    _assert_user_error(_invoke("run", str(tmp_path / "absent.yaml")), "absent.yaml", "does not exist")


@pytest.mark.parametrize("command", [["trace"], ["resume"], ["report"]])
def test_missing_run_directory(tmp_path: Path, command: list[str]) -> None:
    _assert_user_error(_invoke(*command, str(tmp_path / "nowhere")), "nowhere: no such run directory")


@pytest.mark.parametrize("command", [["trace"], ["resume"], ["report"]])
def test_a_folder_that_is_not_a_run(tmp_path: Path, command: list[str]) -> None:
    _assert_user_error(_invoke(*command, str(tmp_path)), "not a gaptune run directory")


def test_report_of_an_unfinished_run_says_to_resume(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("selection: random\n")
    _assert_user_error(_invoke("report", str(tmp_path)), "has not finished", f"gaptune resume {tmp_path}")


def test_trace_of_a_run_without_trace_yet(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("selection: random\n")
    _assert_user_error(_invoke("trace", str(tmp_path)), "no decision trace yet")


def test_resume_of_a_started_but_empty_run_directory(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("selection: random\n")
    _assert_user_error(_invoke("resume", str(tmp_path)), "holds no run to resume")


def test_a_bad_data_file_names_the_file_and_row(tmp_path: Path) -> None:
    row = ('{"id": "a", "image": "gone.png", "conversations": '
           '[{"from": "human", "value": "<image>\\nQ?"}, {"from": "gpt", "value": "A"}]}\n')
    for split in ("probe", "val", "test"):
        (tmp_path / f"{split}.jsonl").write_text(row)
    config = tmp_path / "c.yaml"
    config.write_text("task:\n  world: null\n" + "".join(f"  {s}: {tmp_path / s}.jsonl\n" for s in ("probe", "val", "test")))
    result = _invoke("run", str(config), "--run-dir", str(tmp_path / "run"))
    _assert_user_error(result, "probe.jsonl line 1, field 'image'", "gone.png", "does not exist")


def _raising(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    import gaptune.graph.runner as runner

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(runner, "run", fail)


def test_a_teacher_failure_that_ends_the_run_is_the_users_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from gaptune.agents.llm.errors import TeacherError

    _raising(monkeypatch, TeacherError("unreachable", "teacher 'gpt-x' at http://localhost:9: connection refused"))
    _assert_user_error(_invoke("run"), "http://localhost:9: connection refused", "teacher.base_url")


def test_a_missing_path_from_a_library_is_the_users_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    _raising(monkeypatch, FileNotFoundError(2, "No such file or directory", "/models/llava"))
    _assert_user_error(_invoke("run"), "/models/llava: no such file or directory")


def test_a_config_models_validation_error_is_the_users_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from gaptune.agents.teacher_config import TeacherConfig

    with pytest.raises(ValidationError) as caught:
        TeacherConfig.model_validate({"critics": "not a list"})
    _raising(monkeypatch, caught.value)
    _assert_user_error(_invoke("run"), "invalid TeacherConfig", "critics")


def test_a_bug_is_one_line_without_traceback_unless_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    _raising(monkeypatch, KeyError("history"))
    result = _invoke("run")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    [line] = result.stderr.strip().splitlines()
    assert "bug in gaptune" in line and "KeyError" in line and "rerun with --debug" in line
    debugging = _invoke("--debug", "run")
    assert debugging.exit_code == 1 and "Traceback" in debugging.stderr and "rerun with --debug" not in debugging.stderr


def test_usage_errors_stay_typers(tmp_path: Path) -> None:
    result = _invoke("trace")
    assert result.exit_code == 2 and "Missing argument" in result.output and "Traceback" not in result.output


@pytest.mark.skipif(torch_has_cuda(), reason="the machine has a GPU: cuda is a valid device here")
def test_cuda_without_a_gpu_is_refused_before_any_work(tmp_path: Path) -> None:
    result = _invoke("run", "--run-dir", str(tmp_path / "run"), "--set", "trainer.device=cuda",
                     "--set", f"cache_dir={tmp_path / 'cache'}")
    _assert_user_error(result, "device 'cuda'", "trainer.device", "auto or cpu")
    assert not (tmp_path / "cache").exists(), "refused before the student was built or the pool indexed"
    assert not (tmp_path / "run").exists(), "and before the run directory was made: the fixed command can reuse it"


def test_world_family_writes_a_checkpoint_the_auto_classes_load_and_names_the_known_types(tmp_path: Path) -> None:
    import json

    done = _invoke("world", "family", "idefics3", "--out", str(tmp_path / "idefics3"))
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "idefics3" / "config.json").read_text())["model_type"] == "idefics3"
    assert "<end_of_utterance>" in (tmp_path / "idefics3" / "chat_template.jinja").read_text()
    unknown = _invoke("world", "family", "fancy_vlm", "--out", str(tmp_path / "fancy"))
    assert unknown.exit_code == 2 and "fancy_vlm" in unknown.output and "idefics3" in unknown.output, unknown.output
    assert "Traceback" not in unknown.output and not (tmp_path / "fancy").exists()
    qwen = _invoke("world", "family", "qwen2_vl", "--out", str(tmp_path / "qwen"))
    assert qwen.exit_code == 2 and "torchvision" in qwen.output, qwen.output
