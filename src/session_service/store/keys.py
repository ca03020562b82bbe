"""The one place that names Redis keys.

Layout (``P`` is ``KEY_PREFIX``, ``U`` the user id as unpadded base64url of its
UTF-8 bytes, so it never contains ``{``, ``}``, ``:``, glob characters or
another user's id as a prefix of the whole tag)::

    P:{U}:s:<sid>        hash    the session record
    P:{U}:m:<sid>        stream  its messages, entry ids 0-1, 0-2, ...
    P:{U}:i:<sid>        hash    idempotency records of its message appends
    P:{U}:g:<sid>        zset    the same Idempotency-Keys by time, to drop expired records
    P:{U}:k:<sid>        zset    linked case ids, scored by link time
    P:{U}:t:<sid>        hash    tool-call id -> "<call seq>" or "<call seq>:<result seq>"
    P:{U}:y:<sid>        stream  its summaries, entry ids 0-1, 0-2, ...
    P:{U}:c:<hex>        string  client_id (hex of UTF-8) -> sid, for resume
    P:{U}:x              zset    sid -> expires_at (ms); +inf when kept forever
    P:{U}:e              zset    an erase in progress: the sessions it still has to drop
    P:{U}:z:<status>     zset    sid -> last_activity_at (ms), one per status
    P:{U}:n              hash    sid -> messages counted in `P:{U}:u` (statistics)
    P:{U}:u              hash    the user's counters: `messages` (statistics)
    P:{U}:q:<sha256>     string  idempotency record of a create or a summary
    P:{U}:r:<minute>     string  rate-limit counter
    P:{U}:j:<sid>        stream  messages staged by import-legacy, renamed to m:<sid>
    P:{U}:l:<sid>        string  marks a session import-legacy imported (never again)
    P:lease:<name>       string  a lease held by one process (the background cleanup)
    P:{U}:w:<walk>       zset    one search walk's matches, sid -> last activity (ms)
    P:{U}:ws             zset    the user's live search walks, walk id -> started (ms)

Every key of a user carries the same hash tag ``{U}``, so all of them live in
one Cluster slot and every script or transaction touches one slot. Lua scripts
receive the user's base ``P:{U}:`` in ``KEYS[1]`` and derive the per-session
keys from it with the same suffixes (see `LUA_PRELUDE`).
"""

from __future__ import annotations

import base64
import functools
import hashlib

SESSION = "s:"
MESSAGES = "m:"
IDEMPOTENCY = "i:"
IDEMPOTENCY_AGE = "g:"
CASES = "k:"
CLIENT = "c:"
EXPIRY = "x"
ERASE = "e"
STATUS_INDEX = "z:"
CREATE_IDEMPOTENCY = "q:"
MESSAGE_COUNTS = "n"
USER_COUNTERS = "u"
RATE = "r:"
IMPORT_STAGING = "j:"
IMPORTED = "l:"
LEASE = "lease:"
TOOL_CALLS = "t:"
SUMMARIES = "y:"
SEARCH_SNAPSHOT = "w:"
SEARCH_SNAPSHOTS = "ws"

LUA_PRELUDE = f"""
local K_SESSION = '{SESSION}'
local K_MESSAGES = '{MESSAGES}'
local K_IDEM = '{IDEMPOTENCY}'
local K_IDEM_AGE = '{IDEMPOTENCY_AGE}'
local K_CASES = '{CASES}'
local K_CLIENT = '{CLIENT}'
local K_EXPIRY = '{EXPIRY}'
local K_ERASE = '{ERASE}'
local K_STATUS = '{STATUS_INDEX}'
local K_CREATE_IDEM = '{CREATE_IDEMPOTENCY}'
local K_COUNTS = '{MESSAGE_COUNTS}'
local K_COUNTERS = '{USER_COUNTERS}'
local K_IMPORT = '{IMPORT_STAGING}'
local K_IMPORTED = '{IMPORTED}'
local K_TOOLS = '{TOOL_CALLS}'
local K_SUMMARIES = '{SUMMARIES}'
local K_SNAPSHOT = '{SEARCH_SNAPSHOT}'
local K_SNAPSHOTS = '{SEARCH_SNAPSHOTS}'
"""


@functools.lru_cache(maxsize=4096)
def encode_user(user_id: str) -> str:
    """Injective, tag-safe encoding of a user id (base64url, no padding).

    Cached: every request builds keys for its user, and active users are few.
    """
    raw = user_id.encode("utf-8", "surrogateescape")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_user(tag: str) -> str:
    padded = tag + "=" * (-len(tag) % 4)
    return base64.urlsafe_b64decode(padded).decode("utf-8", "surrogateescape")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()


class Keys:
    """Key builder bound to one prefix; cheap to create, safe to share."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def base(self, user_id: str) -> str:
        return f"{self.prefix}:{{{encode_user(user_id)}}}:"

    def session(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{SESSION}{session_id}"

    def messages(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{MESSAGES}{session_id}"

    def cases(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{CASES}{session_id}"

    def tool_calls(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{TOOL_CALLS}{session_id}"

    def summaries(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{SUMMARIES}{session_id}"

    def expiry(self, user_id: str) -> str:
        return f"{self.base(user_id)}{EXPIRY}"

    def user_counters(self, user_id: str) -> str:
        return f"{self.base(user_id)}{USER_COUNTERS}"

    def import_staging(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{IMPORT_STAGING}{session_id}"

    def imported(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{IMPORTED}{session_id}"

    def rate(self, user_id: str, minute: int) -> str:
        return f"{self.base(user_id)}{RATE}{minute}"

    def lease(self, name: str) -> str:
        """A process-wide key of no user, so outside every user's tag and SCAN pattern."""
        return f"{self.prefix}:{LEASE}{name}"

    def user_pattern(self, user_id: str) -> str:
        """SCAN pattern for every key of one user (the tag has no glob chars)."""
        return f"{self.base(user_id)}*"

    def expiry_pattern(self) -> str:
        """SCAN pattern matching every user's expiry index."""
        return f"{self.prefix}:{{*}}:{EXPIRY}"

    def base_from_expiry_key(self, key: str) -> str:
        return key[: -len(EXPIRY)]
