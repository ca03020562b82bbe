"""Fork and rewind requests and answers (issue 14)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from session_service.domain.ids import MESSAGE_ID_RE
from session_service.domain.models import Strict, Title


def seq_of(message_id: str) -> int:
    """The sequence number of a well-formed message id; 0 for msg_0000000000 ("before the
    first message": a fork of nothing, a rewind that removes everything)."""
    return int(message_id[4:])


class ForkRequest(Strict):
    through_message_id: str | None = Field(
        None,
        max_length=14,
        pattern=MESSAGE_ID_RE.pattern,
        description="The last message the fork copies (default: the source's last message)",
    )
    title: Title | None = Field(None, description="Default: the source's title")


class RewindRequest(Strict):
    to_message_id: str = Field(
        max_length=14,
        pattern=MESSAGE_ID_RE.pattern,
        description="The last message kept; every later message is removed",
    )


class Rewound(BaseModel):
    removed: int = Field(description="Messages removed")
    last_message_id: str | None = Field(
        description="The last message kept (`to_message_id`; null after a rewind to msg_0000000000)"
    )
