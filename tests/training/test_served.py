"""Evaluation on a student server (vLLM's API) against a real HTTP server running the tiny student."""

from __future__ import annotations

from pathlib import Path

import pytest
from student_server import StudentServer
from teacher_server import free_port

from gaptune.data.errors import ConfigError
from gaptune.data.world.world import pool, task_split
from gaptune.graph.config import load_config
from gaptune.training.config import StudentServerConfig, TrainerConfig
from gaptune.training.evaluate import generate_outputs
from gaptune.training.in_context import pick_demonstrations
from gaptune.training.lora_trainer import load_adapted, train_candidate
from gaptune.training.served import ServedStudent, StudentServerError, adapter_name

pytestmark = pytest.mark.slow

TRAINER = TrainerConfig(epochs=2, batch_size=8, learning_rate=5e-3, device="cpu")


@pytest.fixture(scope="module")
def samples() -> list:
    return task_split("compare-counts", "val", size=6)


@pytest.fixture(scope="module")
def adapters(tiny_student: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    train_set = list(pool(0, 32))
    train_candidate(tiny_student, "lora", train_set, root / "lora", TRAINER, seed=0)
    train_candidate(tiny_student, "in-context", train_set, root / "in-context",
                    TRAINER.model_copy(update={"in_context_k": 1}), seed=0)
    train_candidate(tiny_student, "connector", train_set, root / "stacked", TRAINER, previous=str(root / "lora"))
    return {"lora": root / "lora", "in-context": root / "in-context", "stacked": root / "stacked"}


def _in_process(student: Path, adapter: Path | None, samples: list, **kwargs: object) -> list[str]:
    model, processor = load_adapted(student, None if adapter is None else str(adapter))
    return generate_outputs(model, processor, samples, batch_size=1, max_new_tokens=24, **kwargs)  # type: ignore[arg-type]


def test_served_answers_equal_in_process_ones_for_the_base_and_each_adapter(
        tiny_student: Path, adapters: dict[str, Path], samples: list) -> None:
    with StudentServer(tiny_student) as server:
        served = ServedStudent(StudentServerConfig(base_url=server.base_url, model="student", max_concurrency=4))
        assert served.generate_outputs(None, samples, max_new_tokens=24) == _in_process(tiny_student, None, samples)
        lora = served.generate_outputs(str(adapters["lora"]), samples, max_new_tokens=24)
        assert lora == _in_process(tiny_student, adapters["lora"], samples)
        assert lora != served.generate_outputs(None, samples, max_new_tokens=24), "the adapter changes answers"
        demos = pick_demonstrations(samples, list(pool(0, 40)), k=1, seed=0)
        in_context = served.generate_outputs(str(adapters["in-context"]), samples, max_new_tokens=24,
                                             demonstrations=demos)
        assert in_context == _in_process(tiny_student, adapters["in-context"], samples, demonstrations=demos)
        served.generate_outputs(str(adapters["lora"]), samples[:2], max_new_tokens=8)
        assert server.loads[adapter_name(adapters["lora"])] == 1, "an adapter is loaded into the server once"
        assert server.completions["student"] == 2 * len(samples)
        # a second client (a resumed run) finds the adapter already loaded and goes on
        again = ServedStudent(StudentServerConfig(base_url=server.base_url, model="student"))
        assert again.generate_outputs(str(adapters["lora"]), samples[:2], max_new_tokens=24) == lora[:2]
        with pytest.raises(ConfigError, match="merged chain"):
            served.generate_outputs(str(adapters["stacked"]), samples, max_new_tokens=8)


def test_server_faults_are_user_errors_naming_the_setting(tiny_student: Path, samples: list, tmp_path: Path) -> None:
    down = ServedStudent(StudentServerConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="student",
                                             max_retries=0, timeout_s=5))
    with pytest.raises(StudentServerError, match=r"unreachable \(student.server.base_url\)"):
        down.generate_outputs(None, samples[:1])
    with StudentServer(tiny_student) as server:
        wrong = ServedStudent(StudentServerConfig(base_url=server.base_url, model="llava-7b", max_retries=0))
        with pytest.raises(StudentServerError, match=r"does not serve 'llava-7b' \(student.server.model\)"):
            wrong.generate_outputs(None, samples[:1])
        missing = tmp_path / "adapter-without-weights"
        missing.mkdir()
        (missing / "gaptune_adapter.json").write_text('{"kind": "lora", "train_size": 1, "steps": 1, "final_loss": 1}')
        with pytest.raises(StudentServerError, match="refused adapter"):
            ServedStudent(StudentServerConfig(base_url=server.base_url, model="student")).generate_outputs(
                str(missing), samples[:1])


def test_an_unset_api_key_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="GAPTUNE_NO_SUCH_KEY"):
        ServedStudent(StudentServerConfig(base_url="http://127.0.0.1:9/v1", model="s", api_key_env="GAPTUNE_NO_SUCH_KEY"))


def test_config_refuses_candidates_a_server_cannot_apply() -> None:
    server = ["student.server={base_url: 'http://localhost:8000/v1', model: llava}"]
    assert load_config(None, server).student.server.model == "llava"  # type: ignore[union-attr]
    for candidates in ("[connector]", "[lora, in-context]"):
        with pytest.raises(ConfigError, match="trainer.candidates"):
            load_config(None, [*server, f"trainer.candidates={candidates}"])


def test_a_runs_evaluations_go_to_the_server_when_one_is_set(tiny_student: Path, cache_dir: Path, tmp_path: Path) -> None:
    from gaptune.graph.resources import Resources
    from gaptune.graph.run_dir import RunDir

    common = [f"cache_dir={cache_dir}", f"student.path={tiny_student}", "student.eval_batch_size=1",
              "student.max_new_tokens=24", "task.probe_size=4", "task.val_size=5", "task.test_size=4"]
    local = Resources(load_config(None, common), RunDir(tmp_path / "local")).student.evaluate(None, "val")
    with StudentServer(tiny_student) as server:
        config = load_config(None, [*common, f"student.server={{base_url: '{server.base_url}', model: student}}"])
        served = Resources(config, RunDir(tmp_path / "served")).student.evaluate(None, "val")
        assert server.completions["student"] == 5
    assert [a.output for a in served.attempts] == [a.output for a in local.attempts]
    assert served.accuracy == local.accuracy and served.per_skill == local.per_skill
