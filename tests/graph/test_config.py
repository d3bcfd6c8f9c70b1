from pathlib import Path

import pytest

from gaptune.data.errors import ConfigError
from gaptune.graph.config import load_config


def test_embedded_default_is_the_world_error_driven_loop() -> None:
    config = load_config()
    assert config.task.world == "compare-counts"
    assert config.selection == "error-driven"
    assert config.student.path is None
    assert config.teacher.critics[0].backend == "reader"


def test_overrides_reach_nested_fields_and_parse_yaml_values() -> None:
    config = load_config(None, ["selection=random", "trainer.candidates=[lora, connector]", "trainer.epochs=5",
                                "include_probe=false"])
    assert config.selection == "random"
    assert config.trainer.candidates == ["lora", "connector"]
    assert config.trainer.epochs == 5
    assert config.include_probe is False


def test_unknown_key_in_file_is_an_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("selection: random\ntrainer:\n  epochz: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'trainer\.epochz'"):
        load_config(path)


def test_unknown_override_key_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'roundz'"):
        load_config(None, ["roundz=3"])


def test_bad_value_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"selection"):
        load_config(None, ["selection=best"])
    with pytest.raises(ConfigError, match=r"task.world"):
        load_config(None, ["task.world=no-such-task"])


def test_malformed_override_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["selection"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_reference_teacher_on_a_task_without_gold_steps_is_refused_before_any_work(tmp_path: Path) -> None:
    from gaptune.data.llava_format import write_llava
    from gaptune.data.world.world import task_split
    from gaptune.graph.preflight import check_teacher_fits_data
    from gaptune.graph.resources import Resources
    from gaptune.graph.run_dir import RunDir

    for split in ("probe", "val", "test"):
        samples = [s.model_copy(update={"steps": None}) for s in task_split("compare-counts", split, size=3)]
        write_llava(samples, tmp_path / f"{split}.jsonl")
    config = load_config(None, ["task.world=null"] + [f"task.{s}={tmp_path / s}.jsonl" for s in ("probe", "val", "test")])
    with pytest.raises(ValueError, match="needs gold rationale steps.*teacher.critics"):
        res = Resources(config, RunDir(tmp_path / "run"))
        check_teacher_fits_data(res.config, res.data)
