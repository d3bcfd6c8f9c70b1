"""Structured output that survives weak models and servers that ignore `response_format`.

The schema goes into the prompt as plain text; the reply is searched for the
first JSON object (code fences, chatter around it and single trailing commas
are tolerated), validated with pydantic, and on failure the model is shown its
raw reply and the validation error and asked again. After the repairs the case
is given up as a `TeacherError("malformed")`, with every raw reply kept for the
error message (the `include_raw` idea) and every failure counted.
"""

from __future__ import annotations

import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from gaptune.agents.llm.backends import ChatBackend, Message
from gaptune.agents.llm.errors import TeacherError
from gaptune.data.records import Usage

M = TypeVar("M", bound=BaseModel)

_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def extract_json(text: str) -> dict[str, object]:
    """The first balanced JSON object in `text`; ValueError when there is none."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for end in range(start, len(text)):
            char = text[end]
            if in_string:
                escaped = char == "\\" and not escaped
                if char == '"' and not escaped:
                    in_string = False
                continue
            if char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    candidate = text[start : end + 1]
                    for attempt in (candidate, _TRAILING_COMMA_RE.sub(r"\1", candidate)):
                        try:
                            value = json.loads(attempt)
                        except json.JSONDecodeError:
                            continue
                        if isinstance(value, dict):
                            return value
                    break
        start = text.find("{", start + 1)
    raise ValueError("the reply holds no JSON object")


def schema_instructions(schema: type[BaseModel], example: dict[str, object]) -> str:
    """The output contract spelt out in the prompt (local servers ignore `response_format`)."""
    fields = []
    for field_name, field in schema.model_fields.items():
        description = f": {field.description}" if field.description else ""
        fields.append(f'- "{field_name}"{description}')
    return (
        "Reply with one JSON object and nothing else, with these keys:\n"
        + "\n".join(fields)
        + f"\nExample: {json.dumps(example)}"
    )


def structured_call(
    backend: ChatBackend,
    messages: list[Message],
    schema: type[M],
    *,
    repairs: int = 2,
    max_tokens: int | None = None,
    context: dict[str, object] | None = None,
) -> tuple[M, Usage]:
    """Ask, parse, validate; on an invalid reply ask again with the error shown. Returns the model and total usage."""
    usage = Usage(model=backend.model)
    conversation = list(messages)
    raws: list[str] = []
    for _ in range(repairs + 1):
        try:
            completion = backend.complete(conversation, max_tokens=max_tokens)
        except TeacherError as error:
            error.usage = usage.plus(error.usage)
            raise
        usage = usage.plus(completion.usage)
        raws.append(completion.text)
        try:
            return schema.model_validate(extract_json(completion.text), context=context), usage
        except (ValueError, ValidationError) as error:
            usage.faults["malformed"] = usage.faults.get("malformed", 0) + 1
            problem = str(error)
            if isinstance(error, ValidationError):
                problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors())
            conversation = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": f"That reply was invalid ({problem}). "
                                            "Reply again with only the JSON object."},
            ]
    shown = " | ".join(raw.strip().replace("\n", " ")[:120] for raw in raws)
    raise TeacherError(
        "malformed",
        f"{backend.name}: no valid {schema.__name__} after {repairs + 1} replies; raw replies: {shown}",
        usage=usage,
    )
