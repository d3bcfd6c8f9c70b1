"""Structured output that survives weak models and servers that ignore `response_format`.

Local servers often ignore `response_format` and tool calls, so the schema
goes into the prompt as plain text, with an example. The reply is parsed by
`ReplyParser`, langchain's `PydanticOutputParser` made lenient for weak
models: a bare or ```json-fenced object is parsed by langchain (strictly: a
reply cut off mid-object is not "completed"), failing that the first JSON
object in the chatter is taken, single trailing commas tolerated; then the
schema validates it, with context. A reply that fails raises langchain's
`OutputParserException`, whose observation is shown to the model with its raw
reply for a repair. After the repairs the case is given up as a
`TeacherError("malformed")`, with every raw reply kept for the error message
(the `include_raw` idea) and every failure counted.

langchain's own repair parsers (`OutputFixingParser`,
`RetryWithErrorOutputParser`) live in langchain-classic and call the model
themselves, out of sight of the cost accounting; the repair loop here does
what they do with every repair call counted in the `Usage`.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.output_parsers import PydanticOutputParser
from langchain_core.outputs import Generation
from langchain_core.utils.json import parse_json_markdown
from pydantic import BaseModel, ValidationError

from gaptune.agents.llm.backends import ChatBackend, Message
from gaptune.agents.llm.errors import TeacherError
from gaptune.data.records import Usage

M = TypeVar("M", bound=BaseModel)

_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_DECODER = json.JSONDecoder()


def extract_json(text: str) -> dict[str, object]:
    """The reply's JSON object: bare or fenced (langchain's parser), else the first one in the text; ValueError if none."""
    try:
        value = parse_json_markdown(text, parser=json.loads)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    for brace in re.finditer(r"\{", text):
        tail = text[brace.start():]
        for candidate in (tail, _TRAILING_COMMA_RE.sub(r"\1", tail)):
            try:
                value, _ = _DECODER.raw_decode(candidate)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("the reply holds no JSON object")


def _problem(error: ValueError) -> str:
    """What was wrong with a reply, in words a model can act on."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors())
    return str(error)


class ReplyParser(PydanticOutputParser[M]):
    """langchain's `PydanticOutputParser`, lenient about where the JSON sits, validating with `context`."""

    context: dict[str, Any] | None = None

    def parse_result(self, result: list[Generation], *, partial: bool = False) -> M:
        text = result[0].text
        try:
            return self.pydantic_object.model_validate(extract_json(text), context=self.context)
        except ValueError as error:  # no JSON object, or one the schema rejects (pydantic's ValidationError)
            problem = _problem(error)
            raise OutputParserException(f"invalid {self.pydantic_object.__name__}: {problem}", observation=problem,
                                        llm_output=text, send_to_llm=True) from error


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
    parser: ReplyParser[M] = ReplyParser(pydantic_object=schema, context=context)
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
            return parser.parse(completion.text), usage
        except OutputParserException as error:
            usage.faults["malformed"] = usage.faults.get("malformed", 0) + 1
            conversation = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": f"That reply was invalid ({error.observation}). "
                                            "Reply again with only the JSON object."},
            ]
    shown = " | ".join(raw.strip().replace("\n", " ")[:120] for raw in raws)
    raise TeacherError(
        "malformed",
        f"{backend.name}: no valid {schema.__name__} after {repairs + 1} replies; raw replies: {shown}",
        usage=usage,
    )
