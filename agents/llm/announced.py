"""A backend that announces each call (prompt, reply, usage, timing, fault) to the run's live listener.

`build_backend` wraps every teacher backend in it, outermost, so cached
replies are announced too (as cached calls) and every role (critic, analyst,
judge, annotator) is seen the same way. With nobody listening it only
forwards the call.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from gaptune.agents.llm.errors import TeacherError
from gaptune.data.live_events import TeacherCall, announce, is_listened
from gaptune.data.records import Usage

if TYPE_CHECKING:  # backends wraps its backends in this class, so it cannot be imported from here at run time
    from gaptune.agents.llm.backends import ChatBackend, Completion, Message

IMAGE_PLACEHOLDER = "[image]"


def _without_images(messages: list[Message]) -> list[dict[str, Any]]:
    """The prompt with image parts replaced by a placeholder: a span holds text, not megabytes of base64."""
    shown = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = [part if part.get("type") == "text" else {"type": part.get("type", "?"), "value": IMAGE_PLACEHOLDER}
                       for part in content]
        shown.append({"role": message["role"], "content": content})
    return shown


class AnnouncedBackend:
    """Forwards to `inner` and announces the call when someone listens."""

    def __init__(self, inner: ChatBackend) -> None:
        self.inner = inner
        self.name, self.model, self.vision, self.where = inner.name, inner.model, inner.vision, inner.where

    def _announce(self, operation: str, messages: list[Message], reply: str, usage: Usage, started_ns: int,
                  fault: str | None = None) -> None:
        announce(TeacherCall(backend=self.name, model=usage.model or self.model, operation=operation,
                             messages=_without_images(messages), reply=reply, usage=usage, started_ns=started_ns,
                             ended_ns=time.time_ns(), fault=fault))

    def complete(self, messages: list[Message], *, max_tokens: int | None = None) -> Completion:
        if not is_listened():
            return self.inner.complete(messages, max_tokens=max_tokens)
        started = time.time_ns()
        try:
            completion = self.inner.complete(messages, max_tokens=max_tokens)
        except TeacherError as error:
            self._announce("complete", messages, "", error.usage, started, fault=error.kind)
            raise
        self._announce("complete", messages, completion.text, completion.usage, started)
        return completion

    def answer_logprobs(self, messages: list[Message], answers: list[str]) -> tuple[list[float], Usage]:
        if not is_listened():
            return self.inner.answer_logprobs(messages, answers)
        started = time.time_ns()
        try:
            scores, usage = self.inner.answer_logprobs(messages, answers)
        except TeacherError as error:
            self._announce("answer_logprobs", messages, "", error.usage, started, fault=error.kind)
            raise
        reply = ", ".join(f"{answer}: {score:.4f}" for answer, score in zip(answers, scores, strict=True))
        self._announce("answer_logprobs", messages, reply, usage, started)
        return scores, usage
