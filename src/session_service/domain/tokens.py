"""Tool calls and token counts: the bounds and the one estimate rule.

The caller's model knows its own tokenizer, so a caller-supplied `token_count`
always wins. Without one the service estimates with a single rule (below) that
is deliberately tokenizer-agnostic: it is documented, cheap and the same in
Python and in Lua (old messages without a stored count are estimated alike).
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from session_service.domain.text import check_json_bounds

MAX_TOOL_CALLS = 32  # per assistant message
MAX_TOOL_CALL_ID = 128
MAX_TOOL_NAME = 128
MAX_TOOL_ARGUMENTS_BYTES = 16 * 1024
MAX_TOOL_ARGUMENTS_DEPTH = 10
MAX_TOKEN_COUNT = 1_000_000  # per message or summary
MAX_WINDOW_TOKENS = 10_000_000
WINDOW_MAX_MESSAGES = 1000
WINDOW_MAX_BYTES = 1024 * 1024  # stored message data (content, tool calls, metadata)
TOKENS_PER_TOOL_CALL = 8
BYTES_PER_TOKEN = 4

ToolCallId = Annotated[
    str, Field(min_length=1, max_length=MAX_TOOL_CALL_ID, pattern=r"^[\x21-\x7e]+$")
]
ToolName = Annotated[
    str, Field(min_length=1, max_length=MAX_TOOL_NAME, pattern=r"^[A-Za-z0-9_.:-]+$")
]
TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKEN_COUNT, strict=True)]


def _check_arguments(value: dict[str, Any] | str) -> dict[str, Any] | str:
    return check_json_bounds(value, MAX_TOOL_ARGUMENTS_BYTES, MAX_TOOL_ARGUMENTS_DEPTH)


ToolArguments = Annotated[dict[str, Any] | str, AfterValidator(_check_arguments)]


class ToolCall(BaseModel):
    """One call an assistant message asks for; its result is a later `tool` message."""

    model_config = ConfigDict(extra="forbid")
    id: ToolCallId
    name: ToolName
    arguments: ToolArguments = Field(
        default_factory=dict,
        description=f"A JSON object or a string, at most {MAX_TOOL_ARGUMENTS_BYTES} bytes "
        "serialized; returned exactly as given (object keys sorted)",
    )


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def estimate_tokens(content: str, tool_calls: list[dict[str, Any]] | None = None) -> int:
    """ceil(UTF-8 bytes / 4) of the content, each tool call's name and its serialized
    arguments, plus 8 per tool call."""
    size = len(content.encode("utf-8"))
    for call in tool_calls or ():
        args = call.get("arguments", {})
        size += len(call["name"].encode("utf-8"))
        size += len(args.encode("utf-8")) if isinstance(args, str) else len(orjson.dumps(args))
    return _ceil_div(size, BYTES_PER_TOKEN) + TOKENS_PER_TOOL_CALL * len(tool_calls or ())
