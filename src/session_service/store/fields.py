"""The names of every stored field, declared once.

Short names keep an empty session well under 1 KiB. The codec (codec.py), the
stores and the Lua scripts use these names; tests/store/test_fields.py holds every
field name the scripts read or write on a session hash, a message entry or a
summary entry to this declaration, so a new field is declared here first and a
misspelt one fails a test instead of storing a stray field.
"""

from __future__ import annotations

#: The session hash `P:{U}:s:<sid>`: field -> meaning.
SESSION: dict[str, str] = {
    "v": "schema version",
    "st": "status",
    "ty": "session_type",
    "ci": "client_id",
    "t": "title",
    "d": "description",
    "tl": "title, case-folded (search)",
    "dl": "description, case-folded (search)",
    "ca": "created_at (ms)",
    "ua": "updated_at (ms)",
    "la": "last_activity_at (ms)",
    "ea": "expires_at (ms; 0 = never)",
    "to": "inactivity timeout (ms)",
    "ps": "status before archiving",
    "ar": "archived_at (ms)",
    "mc": "message count",
    "nu": "user messages",
    "na": "assistant messages",
    "ns": "system messages",
    "nt": "tool messages",
    "fm": "first message at (ms)",
    "lm": "last message at (ms)",
    "tk": "total tokens",
    "ku": "user tokens",
    "ka": "assistant tokens",
    "ks": "system tokens",
    "kt": "tool tokens",
    "sy": "latest summary's seq",
    "sw": "the message seq the latest summary covers through",
    "sk": "latest summary's tokens",
    "sn": "summaries stored (they count toward MAX_MESSAGES_PER_SESSION with mc)",
    "sq": "highest summary seq ever given",
    "ev": "version of the session (its ETag)",
    "mv": "version of the messages collection (its ETag)",
    "li": "highest message seq ever given (a rewind keeps it: ids are never reused)",
    "rg": "rewinds so far (the generation a staged copy checks)",
    "fs": "forked from: the source session id",
    "fi": "forked from: the last message seq copied (0: none)",
}

#: Field name prefixes of the session hash: `m:<key>` metadata, `x:<key>` context (JSON).
SESSION_PREFIXES: dict[str, str] = {"m:": "metadata value (JSON)", "x:": "context value (JSON)"}

#: A message entry of the stream `P:{U}:m:<sid>` (entry 0-N is msg_N).
MESSAGE: dict[str, str] = {
    "r": "role",
    "c": "content",
    "t": "timestamp (ms)",
    "m": "metadata JSON ('' = none)",
    "k": "token count (absent on entries of earlier releases: estimated)",
    "e": "'1' when the token count is the service's estimate",
    "tc": "tool calls JSON (assistant messages)",
    "ti": "tool_call_id (tool messages)",
    "ta": "seq of the assistant message that made the call (tool messages)",
}

#: A summary entry of the stream `P:{U}:y:<sid>` (entry 0-N is sum_N).
SUMMARY: dict[str, str] = {
    "c": "content",
    "w": "covers_through (message seq)",
    "k": "token count",
    "e": "'1' when the token count is the service's estimate",
    "t": "created (ms)",
    "m": "metadata JSON ('' = none)",
}
