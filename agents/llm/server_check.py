"""Before any work: is each configured teacher server there, and does it take our key?

A run that finds out at its first critique that the teacher's server is down
has already spent the base evaluation and the probe, and used to read the
silence as "no gap found". One cheap request per server (the model list)
before the first round turns that into one line naming the role, the URL and
what the server said.
"""

from __future__ import annotations

import os

import openai

from gaptune.agents.llm.errors import TeacherUnavailable
from gaptune.agents.teacher_config import OpenAIBackend

OPENAI_API = "https://api.openai.com/v1"
# Status codes that say the server is up but has no model list: it may still serve chat completions.
_NO_MODEL_LIST = (404, 405, 501)


def where(config: OpenAIBackend) -> str:
    """The server as messages name it (model and URL; never a key)."""
    return f"teacher {config.model!r} at {config.base_url or OPENAI_API}"


def api_key(config: OpenAIBackend) -> str:
    """The key from `api_key_env`; a local server (base_url set) needs none, the OpenAI API does."""
    key = os.environ.get(config.api_key_env)
    if not key and config.base_url is None:
        raise TeacherUnavailable(
            f"{where(config)} needs a key: set the environment variable {config.api_key_env} (named by "
            "api_key_env), or set base_url to a local server")
    # Local servers need no key; the client insists on one, so a placeholder stands in.
    return key or "not-needed"


def check_server(config: OpenAIBackend, *, role: str) -> None:
    """One GET of the model list; raises `TeacherUnavailable` when the server is down, rejects the key, or fails."""
    try:
        key = api_key(config)
    except TeacherUnavailable as error:
        raise TeacherUnavailable(f"{role}: {error}") from error
    client = openai.OpenAI(base_url=config.base_url, api_key=key, max_retries=1,
                           timeout=min(config.timeout_s, 10.0))
    fix = f"fix the server or {role}'s base_url / api_key_env in the config"
    try:
        client.models.list()
    except openai.APITimeoutError as error:
        raise TeacherUnavailable(f"{role}: {where(config)} did not answer within {client.timeout}s; {fix}") from error
    except openai.APIConnectionError as error:
        raise TeacherUnavailable(f"{role}: {where(config)} is unreachable ({error.__cause__ or error}); {fix}") \
            from error
    except openai.APIStatusError as error:
        if error.status_code in _NO_MODEL_LIST:
            return
        if error.status_code in (401, 403):
            raise TeacherUnavailable(f"{role}: {where(config)} rejected the key in {config.api_key_env} "
                                     f"(HTTP {error.status_code}); {fix}") from error
        raise TeacherUnavailable(f"{role}: {where(config)} answered HTTP {error.status_code} to a model list "
                                 f"request; {fix}") from error
    finally:
        client.close()
