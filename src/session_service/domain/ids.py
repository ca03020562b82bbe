"""Session and message identifiers.

Session ids carry 128 random bits so they cannot be guessed. Sessions imported
from the original service keep its ids, lower-case UUIDs, which clients hold, so
both forms are session ids everywhere. Message ids are a fixed-width sequence
number, so comparing them as plain strings gives server order. Both are checked
against their format before any storage call.
"""

from __future__ import annotations

import re
import secrets

SESSION_ID_RE = re.compile(
    r"^(?:sess_[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
MESSAGE_ID_RE = re.compile(r"^msg_[0-9]{10}$")
SUMMARY_ID_RE = re.compile(r"^sum_[0-9]{10}$")
MESSAGE_ID_WIDTH = 10


def new_session_id() -> str:
    return f"sess_{secrets.token_hex(16)}"


def is_session_id(value: str) -> bool:
    return SESSION_ID_RE.fullmatch(value) is not None


def message_id(seq: int) -> str:
    return f"msg_{seq:0{MESSAGE_ID_WIDTH}d}"


def message_seq(value: str) -> int | None:
    """The sequence number of a well-formed message id, else None."""
    return _seq(MESSAGE_ID_RE, value)


def summary_id(seq: int) -> str:
    return f"sum_{seq:0{MESSAGE_ID_WIDTH}d}"


def summary_seq(value: str) -> int | None:
    """The sequence number of a well-formed summary id, else None."""
    return _seq(SUMMARY_ID_RE, value)


def _seq(pattern: re.Pattern[str], value: str) -> int | None:
    # Both kinds are a four-character prefix and a number; 0 is never issued.
    if pattern.fullmatch(value) is None:
        return None
    seq = int(value[4:])
    return seq if seq > 0 else None
