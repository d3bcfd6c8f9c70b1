"""LLM backends behind one small interface: chat completion, and answer log-probabilities.

`OpenAIChat` talks to any OpenAI-compatible server through langchain's
`ChatOpenAI`; `HFCausalLM` runs a transformers causal LM in-process (exact
log-probabilities, no server). Both return a `Usage` per call; `CachedBackend`
wraps either with the on-disk response cache. Retries are the openai client's
own; its HTTP client (`http_client.py`) counts each retried fault into the
call's `Usage` and holds the run's one limit on requests in flight, so every
role (critic, analyst, judge, annotator) gets the same robustness.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gaptune.agents.llm.announced import AnnouncedBackend
from gaptune.agents.llm.errors import TeacherError
from gaptune.agents.llm.http_client import FaultCountingClient, Limiter, recording, teacher_error
from gaptune.agents.llm.response_cache import ResponseCache, cache_key
from gaptune.agents.llm.server_check import OPENAI_API, where
from gaptune.agents.llm.server_check import api_key as server_key
from gaptune.agents.teacher_config import HFBackend, OpenAIBackend
from gaptune.data.records import Usage

Message = dict[str, Any]
"""A chat message: {"role": ..., "content": str | list of OpenAI content parts}."""


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage


class ChatBackend(Protocol):
    """What every teacher role needs from a model."""

    name: str
    model: str
    vision: bool
    where: str
    """The model and its server, as error messages name it (never a key)."""

    def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> Completion: ...

    def answer_logprobs(self, messages: list[Message], answers: list[str]) -> tuple[list[float], Usage]:
        """Log-probability of each answer as the model's reply to `messages`."""
        ...


def _cost(tokens_in: int, tokens_out: int, price_in: float | None, price_out: float | None) -> float | None:
    if price_in is None and price_out is None:
        return None
    return tokens_in * (price_in or 0.0) / 1e6 + tokens_out * (price_out or 0.0) / 1e6


def _text_only(messages: list[Message]) -> list[Message]:
    """Drop image parts for text-only models; join the text parts."""
    flat = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(part["text"] for part in content if part.get("type") == "text")
        flat.append({"role": message["role"], "content": content})
    return flat


class OpenAIChat:
    """An OpenAI-compatible endpoint; the client retries (`max_retries`, `timeout_s`), its HTTP client counts faults."""

    # The most alternatives the OpenAI API returns per token.
    TOP_LOGPROBS = 20

    def __init__(self, config: OpenAIBackend, *, limiter: Limiter | None = None) -> None:
        from langchain_openai import ChatOpenAI

        self.config = config
        self.model = config.model
        self.vision = config.vision
        self.name = config.name or f"openai:{config.model}"
        self.where = where(config)
        api_key = server_key(config)
        self._http = FaultCountingClient(limiter=limiter, timeout=config.timeout_s)
        common: dict[str, Any] = dict(
            model=config.model, base_url=config.base_url, api_key=api_key, temperature=config.temperature,
            timeout=config.timeout_s, max_retries=config.max_retries, http_client=self._http,
        )
        self._chat = ChatOpenAI(**common, max_completion_tokens=config.max_tokens)
        self._scorer = ChatOpenAI(**common, max_completion_tokens=1, logprobs=True, top_logprobs=self.TOP_LOGPROBS)

    def _invoke(self, client: Any, messages: list[Message], usage: Usage, **kwargs: Any) -> Any:
        sendable = messages if self.vision else _text_only(messages)
        started = time.perf_counter()
        with recording() as record:
            try:
                reply = client.invoke(sendable, **kwargs)
            except Exception as error:
                raise teacher_error(error, where=self.where, attempts=record.attempts, usage=usage) from error
            finally:
                usage.latency_s += time.perf_counter() - started
                for kind, count in record.faults.items():
                    usage.faults[kind] = usage.faults.get(kind, 0) + count
        meta = reply.usage_metadata or {}
        usage.calls += 1
        usage.tokens_in += int(meta.get("input_tokens", 0))
        usage.tokens_out += int(meta.get("output_tokens", 0))
        usage.model = str(reply.response_metadata.get("model_name") or self.model)
        usage.cost_usd = _cost(usage.tokens_in, usage.tokens_out, self.config.price_in_per_1m,
                               self.config.price_out_per_1m)
        return reply

    def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> Completion:
        usage = Usage(model=self.model)
        kwargs = {"max_completion_tokens": max_tokens} if max_tokens else {}
        reply = self._invoke(self._chat, messages, usage, **kwargs)
        content = reply.content if isinstance(reply.content, str) else str(reply.content)
        return Completion(text=content, usage=usage)

    def answer_logprobs(self, messages: list[Message], answers: list[str]) -> tuple[list[float], Usage]:
        """First-token log-probabilities of each answer (the API gives no scores for arbitrary text).

        An answer whose first token is not among the top alternatives gets a
        floor one nat below the least likely listed alternative.
        """
        usage = Usage(model=self.model)
        reply = self._invoke(self._scorer, messages, usage)
        content = (reply.response_metadata.get("logprobs") or {}).get("content") or []
        if not content or not content[0].get("top_logprobs"):
            # Servers that ignore `logprobs` (e.g. `transformers serve`) cannot run answer-switch.
            raise TeacherError(
                "malformed",
                f"{self.where}: the server returned no log-probabilities; answer-switch needs them: use an OpenAI "
                "endpoint that supports logprobs, an `hf` backend, or method: prompt",
                usage=usage,
            )
        top = {alt["token"].strip().lower(): alt["logprob"] for alt in content[0]["top_logprobs"]}
        floor = min(top.values()) - 1.0
        scores = []
        for answer in answers:
            key = answer.strip().lower()
            matches = [lp for token, lp in top.items() if token and key.startswith(token)]
            scores.append(max(matches) if matches else floor)
        return scores, usage


_HF_MODELS: dict[tuple[str, str, str], tuple[Any, Any, threading.Lock]] = {}
_HF_LOAD_LOCK = threading.Lock()


def _load_hf(config: HFBackend) -> tuple[Any, Any, threading.Lock]:
    """Load once per (model, device, dtype): several roles may share one in-process model."""
    key = (config.model, config.device, config.dtype)
    with _HF_LOAD_LOCK:
        if key not in _HF_MODELS:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            dtype = "auto" if config.dtype == "auto" else getattr(torch, config.dtype)
            try:
                tokenizer = AutoTokenizer.from_pretrained(config.model)
                model: Any = AutoModelForCausalLM.from_pretrained(config.model, dtype=dtype)
                model = model.to(config.device)
            except OSError as error:
                raise ValueError(
                    f"teacher hf backend: cannot load model {config.model!r}: expected a local "
                    f"save_pretrained directory or a cached model name ({error})"
                ) from error
            model.eval()
            _HF_MODELS[key] = (tokenizer, model, threading.Lock())
        return _HF_MODELS[key]


class HFCausalLM:
    """A transformers causal LM in this process; calls are serialised (one model, shared cores)."""

    vision = False

    def __init__(self, config: HFBackend) -> None:
        self.config = config
        self.model = config.model
        self.name = config.name or f"hf:{Path(config.model).name or config.model}"
        self.where = f"in-process teacher {config.model!r}"
        self.tokenizer, self.lm, self.lock = _load_hf(config)

    def _prompt_ids(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat; a final assistant message is continued rather than closed (answer scoring)."""
        prefill = messages[-1]["role"] == "assistant"
        ids = self.tokenizer.apply_chat_template(
            _text_only(messages), add_generation_prompt=not prefill, continue_final_message=prefill, tokenize=True,
        )
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):
            ids = ids["input_ids"]
        return list(ids)

    def _usage(self, tokens_in: int, tokens_out: int, latency: float) -> Usage:
        return Usage(
            calls=1, tokens_in=tokens_in, tokens_out=tokens_out, latency_s=latency, model=self.model,
            cost_usd=_cost(tokens_in, tokens_out, self.config.price_in_per_1m, self.config.price_out_per_1m),
        )

    def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> Completion:
        import torch

        prompt = self._prompt_ids(messages)
        started = time.perf_counter()
        with self.lock, torch.inference_mode():
            input_ids = torch.tensor([prompt], device=self.lm.device)
            output = self.lm.generate(
                input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                max_new_tokens=max_tokens or self.config.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        new = output[0, len(prompt):].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text=text, usage=self._usage(len(prompt), len(new), time.perf_counter() - started))

    def answer_logprobs(self, messages: list[Message], answers: list[str]) -> tuple[list[float], Usage]:
        """Exact log P(answer | prompt), summed over the answer's tokens (teacher forcing)."""
        import torch

        prompt = self._prompt_ids(messages)
        started = time.perf_counter()
        scores, tokens_in = [], 0
        with self.lock, torch.inference_mode():
            for answer in answers:
                target = self.tokenizer(" " + answer.strip(), add_special_tokens=False)["input_ids"]
                if not target:
                    raise ValueError(f"answer {answer!r} has no tokens to score")
                ids = torch.tensor([prompt + target], device=self.lm.device)
                logits = self.lm(ids).logits[0, len(prompt) - 1 : -1].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                picked = logprobs.gather(1, torch.tensor(target, device=logits.device)[:, None])
                scores.append(float(picked.sum()))
                tokens_in += ids.shape[1]
        return scores, self._usage(tokens_in, 0, time.perf_counter() - started)


class CachedBackend:
    """A backend whose replies are read from, and written to, the response cache."""

    def __init__(self, inner: ChatBackend, cache: ResponseCache, *, kind: str, params: dict[str, Any]) -> None:
        self.inner = inner
        self.cache = cache
        self.name, self.model, self.vision, self.where = inner.name, inner.model, inner.vision, inner.where
        self._identity = {"backend": kind, "model": inner.model, "params": params}

    def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> Completion:
        key = cache_key({**self._identity, "op": "complete", "messages": messages, "max_tokens": max_tokens})
        hit = self.cache.get(key)
        if hit is not None:
            return Completion(text=hit["text"], usage=Usage(cached_calls=1, model=self.model))
        completion = self.inner.complete(messages, max_tokens=max_tokens)
        self.cache.put(key, {"text": completion.text})
        return completion

    def answer_logprobs(self, messages: list[Message], answers: list[str]) -> tuple[list[float], Usage]:
        key = cache_key({**self._identity, "op": "answer_logprobs", "messages": messages, "answers": answers})
        hit = self.cache.get(key)
        if hit is not None and all(isinstance(v, float) and math.isfinite(v) for v in hit["scores"]):
            return list(hit["scores"]), Usage(cached_calls=1, model=self.model)
        scores, usage = self.inner.answer_logprobs(messages, answers)
        self.cache.put(key, {"scores": scores})
        return scores, usage


def build_backend(config: OpenAIBackend | HFBackend, *, cache_dir: Path, cache: bool,
                  limiter: Limiter | None = None) -> ChatBackend:
    """The backend for one config block, cached on disk unless `cache` is off.

    `limiter` bounds the requests in flight across every backend sharing it
    (`teacher.max_concurrency`: build one per run with `request_limiter` and
    pass it to every role). Every call is announced to the run's live
    listener (`AnnouncedBackend`), cached replies included.
    """
    backend: ChatBackend
    if isinstance(config, OpenAIBackend):
        backend = OpenAIChat(config, limiter=limiter)
        # Everything that changes the reply: a cached reply from another server must never stand in for this one's.
        params: dict[str, Any] = {"base_url": config.base_url or OPENAI_API, "temperature": config.temperature,
                                  "max_tokens": config.max_tokens, "vision": config.vision}
    else:
        backend = HFCausalLM(config)
        params = {"dtype": config.dtype, "max_new_tokens": config.max_new_tokens}
    if cache:
        backend = CachedBackend(backend, ResponseCache(Path(cache_dir) / "responses"), kind=config.backend, params=params)
    return AnnouncedBackend(backend)
