"""Evaluating the student on an OpenAI-compatible server (vLLM) instead of in-process.

A real-size student generates far faster under vLLM's continuous batching
than under `generate` in the training process. The prompts are the same chat
messages the in-process path renders (`prompting.messages_for`), with each
image sent as a PNG data URL; the server applies the model's own chat
template, as the processor does here. Generation is greedy, so the server's
answers and the in-process ones agree token for token (tests check it).

An adapter is loaded into the server once, under a name derived from its
path (`/v1/load_lora_adapter`, vLLM's runtime LoRA loading), and requested by
that name; the base student is requested by `student.server.model`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
from PIL import Image

from gaptune.data.errors import ConfigError, UserError
from gaptune.data.sample import Sample
from gaptune.training.batching import NO_DEMONSTRATIONS
from gaptune.training.candidate_kinds import kind_spec
from gaptune.training.config import StudentServerConfig
from gaptune.training.lora_trainer import read_adapter_info
from gaptune.training.prompting import images_for, messages_for


class StudentServerError(UserError, RuntimeError):
    """The student server is unreachable, refuses the model or adapter, or answers with an error."""


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")  # lossless: the server sees the pixels the in-process path sees
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def served_messages(sample: Sample, demonstrations: Sequence[Sample] = ()) -> list[dict[str, Any]]:
    """`messages_for`'s messages with each image placeholder carrying its image, in prompt order."""
    images = iter(images_for(sample, demonstrations))
    messages = messages_for(sample, demonstrations)
    for message in messages:
        message["content"] = [
            {"type": "image_url", "image_url": {"url": _data_url(next(images))}} if part["type"] == "image" else part
            for part in message["content"]
        ]
    return messages


def adapter_name(adapter: str | Path) -> str:
    """The name an adapter is served under: stable for its path, distinct across rounds and runs."""
    return "gaptune-" + hashlib.sha256(str(Path(adapter).resolve()).encode()).hexdigest()[:16]


class ServedStudent:
    """The student behind an OpenAI-compatible server, evaluated with any of the run's adapters."""

    def __init__(self, config: StudentServerConfig) -> None:
        self.config = config
        api_key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        if config.api_key_env and not api_key:
            raise ConfigError(f"student.server.api_key_env names {config.api_key_env!r}, which is not set")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = openai.OpenAI(base_url=config.base_url, api_key=api_key or "EMPTY",
                                     timeout=config.timeout_s, max_retries=config.max_retries)
        self._loaded: set[str] = set()
        self._load_lock = threading.Lock()

    def generate_outputs(
        self,
        adapter: str | None,
        samples: Sequence[Sample],
        *,
        max_new_tokens: int = 64,
        demonstrations: Mapping[str, Sequence[Sample]] = NO_DEMONSTRATIONS,
    ) -> list[str]:
        """Greedy answers in input order, `max_concurrency` requests in flight."""
        model = self.config.model if adapter is None else self._load(adapter)

        def complete(sample: Sample) -> str:
            return self._complete(model, served_messages(sample, demonstrations.get(sample.id, ())), max_new_tokens)

        with ThreadPoolExecutor(self.config.max_concurrency) as pool:
            return list(pool.map(complete, samples))

    def _complete(self, model: str, messages: list[dict[str, Any]], max_new_tokens: int) -> str:
        try:
            response = self._client.chat.completions.create(
                model=model, messages=messages,  # type: ignore[arg-type]  # plain dicts in the API's shape
                max_tokens=max_new_tokens, temperature=0.0,
            )
        except openai.APIConnectionError as error:
            raise StudentServerError(
                f"the student server at {self.config.base_url} is unreachable (student.server.base_url): {error}"
            ) from error
        except openai.NotFoundError as error:
            raise StudentServerError(
                f"the student server at {self.config.base_url} does not serve {model!r}"
                f"{' (student.server.model)' if model == self.config.model else ''}: {error.message}"
            ) from error
        except openai.APIStatusError as error:
            raise StudentServerError(
                f"the student server at {self.config.base_url} answered {error.status_code}: {error.message}"
            ) from error
        return (response.choices[0].message.content or "").strip()

    def _load(self, adapter: str) -> str:
        info = read_adapter_info(adapter)
        if not kind_spec(info.kind).servable or info.parent is not None:
            raise ConfigError(f"adapter {adapter}: a served student applies one LoRA adapter on the language model, "
                              f"not a {info.kind} adapter{' on a merged chain' if info.parent else ''}; "
                              "unset student.server to evaluate it in-process")
        name = adapter_name(adapter)
        with self._load_lock:
            if name in self._loaded:
                return name
            url = self.config.base_url.rstrip("/") + "/load_lora_adapter"
            try:
                reply = httpx.post(url, json={"lora_name": name, "lora_path": str(Path(adapter).resolve())},
                                   headers=self._headers, timeout=self.config.timeout_s)
            except httpx.HTTPError as error:
                raise StudentServerError(f"loading adapter {adapter} into {url} failed: {error}") from error
            if reply.status_code != 200 and "already" not in reply.text:
                raise StudentServerError(
                    f"the student server refused adapter {adapter} ({reply.status_code} from {url}: {reply.text[:300]}); "
                    "vLLM needs --enable-lora, a --max-lora-rank at least trainer.lora_rank, and "
                    "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"
                )
            self._loaded.add(name)
        return name
