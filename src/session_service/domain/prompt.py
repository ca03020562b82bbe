"""What an agent asks for to build its prompt: summaries and the prompt window.

A summary stands in for the messages it covers without deleting them; the
window is the latest summary plus the newest messages after it that fit a
token budget.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from session_service.domain.ids import MESSAGE_ID_RE
from session_service.domain.models import JsonObject, Message, Strict
from session_service.domain.tokens import TokenCount


class SummaryCreate(Strict):
    content: str = Field(
        min_length=1, description="At most MAX_MESSAGE_BYTES UTF-8 bytes, like a message"
    )
    covers_through: str = Field(
        max_length=14,
        pattern=MESSAGE_ID_RE.pattern,
        description="The newest message it stands in for; an existing message of the session, "
        "at least as new as the latest summary's",
    )
    token_count: TokenCount | None = Field(
        None, description="The caller's own count; absent = estimated (ceil(UTF-8 bytes / 4))"
    )
    metadata: JsonObject | None = None


class Summary(BaseModel):
    summary_id: str = Field(description="`sum_` + a 10-digit sequence number")
    covers_through: str
    content: str
    token_count: int
    token_count_estimated: bool
    created_at: str
    metadata: dict[str, Any]


class SummaryList(BaseModel):
    session_id: str
    summaries: list[Summary] = Field(description="Newest first")
    total: int
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `before` for the next (older) page")


class Window(BaseModel):
    summary: Summary | None = Field(description="The latest summary, or null")
    messages: list[Message] = Field(
        description="The newest messages after the summary that fit, oldest first, no gap"
    )
    total_tokens: int = Field(description="The summary's tokens plus the messages'")
    truncated: bool = Field(
        description="Some message after the summary was left out (or the summary alone "
        "exceeds max_tokens)"
    )
    first_message_id: str | None = Field(description="The oldest message in `messages`")
