"""The `teacher:` config block and the pure parts of the teacher: defaults, errors, answer-switch rule, JSON repair."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from langchain_core.exceptions import OutputParserException
from pydantic import ValidationError

from gaptune.agents.answer_switch import locate_switch
from gaptune.agents.critics import build_critics
from gaptune.agents.judge import VotingJudge, build_judge
from gaptune.agents.llm.structured_output import ReplyParser, extract_json
from gaptune.agents.prompt_critic import StepVerdict
from gaptune.agents.reference_critic import ReferenceTeacher
from gaptune.agents.step_reader import StepReaderTeacher
from gaptune.agents.teacher_config import HFBackend, OpenAIBackend, TeacherConfig
from gaptune.data.records import Usage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "smollm2_teacher.yaml"


def test_default_critic_is_the_label_blind_reader(tmp_path: Path) -> None:
    config = TeacherConfig()
    critics = build_critics(config, cache_dir=tmp_path)
    assert len(critics) == 1 and isinstance(critics[0], StepReaderTeacher) and critics[0].name == "reader"
    oracle = build_critics(TeacherConfig.model_validate({"critics": [{"backend": "reference"}]}), cache_dir=tmp_path)
    assert isinstance(oracle[0], ReferenceTeacher) and oracle[0].name == "reference"
    ablation = TeacherConfig.model_validate({"critics": [{"backend": "reader", "locate": "random"}]})
    assert build_critics(ablation, cache_dir=tmp_path)[0].name == "reader-random"
    assert isinstance(build_judge(config, cache_dir=tmp_path), VotingJudge)
    assert config.annotator is None and config.fallback is None and config.cache


def test_backends_are_a_discriminated_union() -> None:
    config = TeacherConfig.model_validate({
        "critics": [{"backend": "openai", "model": "gpt-4o-mini"}, {"backend": "hf", "model": "/models/x"}],
        "method": "answer-switch", "answer_switch_delta": 0.5, "answer_switch_lambda": 2,
    })
    assert isinstance(config.critics[0], OpenAIBackend) and isinstance(config.critics[1], HFBackend)
    assert config.critics[0].api_key_env == "OPENAI_API_KEY"


@pytest.mark.parametrize(("block", "message"), [
    ({"critics": [{"backend": "openai", "model": "m", "api_key": "sk-x"}]}, "api_key"),
    ({"critics": [{"backend": "openai", "model": "m", "api_key_env": "sk-abc123 secret"}]}, "NAME of an environment"),
    ({"critics": [{"backend": "vllm", "model": "m"}]}, "backend"),
    ({"critics": [{"backend": "openai", "model": "m"}], "method": "reference"}, "set method to"),
    ({"critics": [{"backend": "reader"}], "fallback": {"backend": "openai", "model": "m"}, "method": "reference"},
     "teacher.fallback has LLM backends"),
    ({"judge": {"backend": "reference"}}, "judge"),
    ({"critics": []}, "critics"),
])
def test_bad_config_names_what_to_fix(block: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TeacherConfig.model_validate(block)


def test_example_config_is_a_valid_teacher_block() -> None:
    config = TeacherConfig.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert isinstance(config.critics[0], OpenAIBackend) and "SmolLM2" not in config.critics[0].api_key_env


@pytest.mark.parametrize(("gold", "student", "delta", "lam", "expected"), [
    ([-1, -1, -1, -5], [-5, -5, -4, -1], 0.0, 1, 2),       # switch at the last step counts
    ([-1, -1, -3, -3], [-5, -5, -2, -2], 0.0, 1, 1),
    ([-1, -1, -3, -3], [-5, -5, -2.5, -2], 1.0, 1, None),   # a lead of 0.5 and 1.0 is not more than delta=1
    ([-1, -3, -1, -3], [-2, -2, -2, -2], 0.0, 2, 2),        # lambda=2: the lead at step 0 did not last
    ([-1, -3, -1, -3], [-2, -2, -2, -2], 0.0, 1, 0),
    ([-5, -5], [-1, -1], 0.0, 1, None),                     # ahead from the start: no overtaking
])
def test_locate_switch_rule(gold, student, delta, lam, expected) -> None:
    assert locate_switch(gold, student, delta=delta, lam=lam) == expected


def test_extract_json_tolerates_weak_model_output() -> None:
    assert extract_json('Sure!\n```json\n{"a": 1, "b": [1, 2,],}\n```') == {"a": 1, "b": [1, 2]}
    assert extract_json('{"text": "a } brace"} trailing') == {"text": "a } brace"}
    assert extract_json('{broken {"ok": true}') == {"ok": True}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("I think step 2 is wrong.")
    with pytest.raises(ValueError, match="no JSON object"):  # cut off by max_tokens: never "completed" into a verdict
        extract_json('{"wrong_step": 2, "missing_skill": "cou')


def test_reply_parser_is_a_langchain_parser_that_validates_with_context() -> None:
    parser: ReplyParser[StepVerdict] = ReplyParser(pydantic_object=StepVerdict, context={"n_steps": 2})
    verdict = parser.invoke('Step 2 is wrong: {"wrong_step": 2, "missing_skill": " Counting. ",}')
    assert (verdict.wrong_step, verdict.missing_skill) == (2, "counting")
    with pytest.raises(OutputParserException) as raised:
        parser.parse('{"wrong_step": 7, "missing_skill": "counting"}')
    assert raised.value.observation == "wrong_step: Value error, wrong_step must be between 1 and 3"
    assert raised.value.llm_output == '{"wrong_step": 7, "missing_skill": "counting"}'


def test_usage_sums_tokens_costs_and_faults() -> None:
    a = Usage(calls=1, tokens_in=10, cost_usd=0.5, faults={"timeout": 1}, model="m1")
    b = Usage(calls=2, tokens_out=4, faults={"timeout": 2, "rate_limit": 1}, model="m2")
    total = a.plus(b)
    assert (total.calls, total.tokens_in, total.tokens_out, total.cost_usd) == (3, 10, 4, 0.5)
    assert total.faults == {"timeout": 3, "rate_limit": 1} and total.model == "m1,m2"
    assert Usage().plus(Usage()).cost_usd is None


def test_the_openai_api_without_a_key_is_a_user_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from gaptune.agents.critics import build_critics
    from gaptune.data.errors import UserError

    monkeypatch.delenv("GAPTUNE_TEST_KEY", raising=False)
    config = TeacherConfig.model_validate({"critics": [{"backend": "openai", "model": "gpt-4o",
                                                        "api_key_env": "GAPTUNE_TEST_KEY"}]})
    with pytest.raises(UserError, match="GAPTUNE_TEST_KEY"):
        build_critics(config, cache_dir=tmp_path)
    local = TeacherConfig.model_validate({"critics": [{"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                                                       "api_key_env": "GAPTUNE_TEST_KEY"}]})
    assert len(build_critics(local, cache_dir=tmp_path)) == 1  # a local server needs no key
