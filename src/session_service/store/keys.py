"""The one place that names Redis keys.

Layout (``P`` is ``KEY_PREFIX``, ``U`` the user id as unpadded base64url of its
UTF-8 bytes, so it never contains ``{``, ``}``, ``:``, glob characters or
another user's id as a prefix of the whole tag)::

    P:{U}:s:<sid>        hash    the session record
    P:{U}:m:<sid>        stream  its messages, entry ids 0-1, 0-2, ...
    P:{U}:i:<sid>        hash    idempotency records of its message appends
    P:{U}:g:<sid>        zset    the same Idempotency-Keys by their message's seq (by time
                                 before issue 20), to drop expired and rewound records
    P:{U}:k:<sid>        zset    linked case ids, scored by link time
    P:{U}:t:<sid>        hash    tool-call id -> "<call seq>" or "<call seq>:<result seq>"
    P:{U}:y:<sid>        stream  its summaries, entry ids 0-1, 0-2, ...
    P:{U}:o:<stg>        string  a copy in progress (fork or staged rewind) under staging id
                                 <stg>: the session it copies (its owner); expires with the
                                 copy, deleted when the copy is published or abandoned, so an
                                 erase's stray sweep keeps the copies of the sessions it spares
    P:{U}:c:<hex>        string  client_id (hex of UTF-8) -> sid, for resume
    P:{U}:x              zset    sid -> expires_at (ms); +inf when kept forever
    P:{U}:e              zset    left by an erase of an earlier release: sessions it still
                                 had to drop (hidden from `x`); the next erase or delete-all
                                 drops them
    P:{U}:es             zset    erases in progress: run id -> cutoff (ms); sessions created
                                 at or before a cutoff are that erase's to drop
    P:{U}:el             set     forks published during an erase from a session it drops
    P:{U}:z:<status>     zset    sid -> last_activity_at (ms), one per status
    P:{U}:n              hash    sid -> messages counted in `P:{U}:u` (statistics)
    P:{U}:u              hash    the user's counters: `messages` (statistics)
    P:{U}:q:<sha256>     string  idempotency record of a create or a summary
    P:{U}:r:<minute>     string  rate-limit counter
    P:{U}:j:<sid>        stream  messages staged by import-legacy, renamed to m:<sid>
    P:{U}:l:<sid>        string  marks a session import-legacy imported (never again)
    P:lease:<name>       string  a lease held by one process (the background cleanup)
    P:{U}:w:<walk>       zset    one search walk's matches, sid -> last activity (ms)
    P:{U}:ws             zset    the user's search walks, walk id -> scan completed (ms)
    P:{U}:v              zset    the user's open watchers (change feed), id -> lease end (ms)
    P:{U}:rb             channel a read barrier: SPUBLISHed (nobody subscribes) before a
                                 WAIT that confirms what an answer shows
                                 (REDIS_CONFIRMED_READS); no key is stored
    P:feed               channel change notifications of every user (lib.lua's notify)

Every key of a user carries the same hash tag ``{U}``, so all of them live in
one Cluster slot and every script or transaction touches one slot. Lua scripts
receive the user's base ``P:{U}:`` in ``KEYS[1]`` and derive the per-session
keys from it with the same suffixes.

This module is the one source of the names the Lua scripts share with Python:
`LUA_PRELUDE`, generated from the declarations below and from the status sets of
`domain.status`, is prepended to every script.
"""

from __future__ import annotations

import base64
import functools
import hashlib

from session_service.domain.status import ALL_STATUSES, UNARCHIVED

SESSION = "s:"
MESSAGES = "m:"
IDEMPOTENCY = "i:"
IDEMPOTENCY_AGE = "g:"
CASES = "k:"
CLIENT = "c:"
EXPIRY = "x"
ERASE = "e"
ERASING = "es"
ERASE_LATE = "el"
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
COPY_OWNER = "o:"
SEARCH_SNAPSHOT = "w:"
SEARCH_SNAPSHOTS = "ws"
WATCHERS = "v"
READ_BARRIER = "rb"
FEED = "feed"

#: Every key a session owns, by suffix: what expires with it, and what deleting it removes.
SESSION_KEYS: tuple[str, ...] = (
    SESSION,
    MESSAGES,
    IDEMPOTENCY,
    IDEMPOTENCY_AGE,
    CASES,
    TOOL_CALLS,
    SUMMARIES,
)

#: The keys of a conversation: what a fork or a staged rewind copies under a new id.
CONVERSATION_KEYS: tuple[str, ...] = (MESSAGES, TOOL_CALLS, SUMMARIES)

#: What a copy may build under a staging id, and a staged rewind swaps in: the
#: conversation, and for a rewind the append idempotency records of the kept messages.
STAGING_KEYS: tuple[str, ...] = (*CONVERSATION_KEYS, IDEMPOTENCY, IDEMPOTENCY_AGE)

#: The Lua name of each suffix (`K_<NAME>`), in the prelude.
_LUA_KEY_NAMES: dict[str, str] = {
    "SESSION": SESSION,
    "MESSAGES": MESSAGES,
    "IDEM": IDEMPOTENCY,
    "IDEM_AGE": IDEMPOTENCY_AGE,
    "CASES": CASES,
    "CLIENT": CLIENT,
    "EXPIRY": EXPIRY,
    "ERASE": ERASE,
    "ERASING": ERASING,
    "ERASE_LATE": ERASE_LATE,
    "STATUS": STATUS_INDEX,
    "CREATE_IDEM": CREATE_IDEMPOTENCY,
    "COUNTS": MESSAGE_COUNTS,
    "COUNTERS": USER_COUNTERS,
    "IMPORT": IMPORT_STAGING,
    "IMPORTED": IMPORTED,
    "TOOLS": TOOL_CALLS,
    "SUMMARIES": SUMMARIES,
    "COPY_OWNER": COPY_OWNER,
    "SNAPSHOT": SEARCH_SNAPSHOT,
    "SNAPSHOTS": SEARCH_SNAPSHOTS,
    "WATCHERS": WATCHERS,
}


def _lua_list(values: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{value}'" for value in values) + "}"


def _lua_prelude() -> str:
    lines = [f"local K_{name} = '{suffix}'" for name, suffix in _LUA_KEY_NAMES.items()]
    lines += [
        "-- Every key a session owns; the keys of its conversation (keys.py).",
        f"local SESSION_KEYS = {_lua_list(SESSION_KEYS)}",
        f"local CONVERSATION_KEYS = {_lua_list(CONVERSATION_KEYS)}",
        f"local STAGING_KEYS = {_lua_list(STAGING_KEYS)}",
        "-- Every status, and those an evict_oldest create may evict (domain/status.py).",
        f"local STATUSES = {_lua_list(ALL_STATUSES)}",
        f"local EVICTABLE = {_lua_list(UNARCHIVED)}",
    ]
    return "\n" + "\n".join(lines) + "\n"


#: Prepended to every script: key suffixes, key lists and status sets, all from Python.
LUA_PRELUDE = _lua_prelude()


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

    def listed(self, user_id: str, session_id: str, suffixes: tuple[str, ...]) -> list[str]:
        """The keys of one session id named by a list of suffixes (as lib.lua `keys_of`)."""
        base = self.base(user_id)
        return [f"{base}{suffix}{session_id}" for suffix in suffixes]

    def conversation(self, user_id: str, session_id: str) -> list[str]:
        """The keys of a session's conversation (`CONVERSATION_KEYS`)."""
        return self.listed(user_id, session_id, CONVERSATION_KEYS)

    def staging(self, user_id: str, staging_id: str) -> list[str]:
        """The keys a copy may build under a staging id (`STAGING_KEYS`), and its owner
        marker (`COPY_OWNER`): everything that removing an abandoned copy deletes."""
        return self.listed(user_id, staging_id, (*STAGING_KEYS, COPY_OWNER))

    def of_session(self, user_id: str, session_id: str) -> list[str]:
        """Every key a session owns (`SESSION_KEYS`)."""
        return self.listed(user_id, session_id, SESSION_KEYS)

    def expiry(self, user_id: str) -> str:
        return f"{self.base(user_id)}{EXPIRY}"

    def user_counters(self, user_id: str) -> str:
        return f"{self.base(user_id)}{USER_COUNTERS}"

    def import_staging(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{IMPORT_STAGING}{session_id}"

    def imported(self, user_id: str, session_id: str) -> str:
        return f"{self.base(user_id)}{IMPORTED}{session_id}"

    def read_barrier(self, user_id: str) -> str:
        """The user's shard channel a read barrier is published to (no key)."""
        return f"{self.base(user_id)}{READ_BARRIER}"

    def rate(self, user_id: str, minute: int) -> str:
        return f"{self.base(user_id)}{RATE}{minute}"

    def feed_channel(self) -> str:
        """The one channel every notification of this prefix goes to (lib.lua builds it too)."""
        return f"{self.prefix}:{FEED}"

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
