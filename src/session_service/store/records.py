"""What the store takes and gives: small frozen records, no behaviour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from session_service.domain.models import MAX_JSON_BYTES, MAX_JSON_KEYS
from session_service.domain.text import search_fold
from session_service.store.codec import dump_json
from session_service.store.keys import digest


@dataclass(frozen=True, slots=True)
class NewSession:
    session_id: str
    timeout_ms: int
    fields: list[str]  # stored field/value pairs: t, d, tl, dl, ty, m:<key>
    client_id: str | None = None

    @classmethod
    def build(
        cls,
        session_id: str,
        timeout_ms: int,
        *,
        title: str | None = None,
        description: str | None = None,
        session_type: str = "troubleshooting",
        metadata: dict[str, Any] | None = None,
        client_id: str | None = None,
    ) -> NewSession:
        """The stored fields of a new session, with the lowered copies search reads."""
        fields = ["ty", session_type]
        if title:
            fields += ["t", title, "tl", search_fold(title)]
        if description:
            fields += ["d", description, "dl", search_fold(description)]
        for key, value in (metadata or {}).items():
            fields += [f"m:{key}", dump_json(value)]
        return cls(session_id, timeout_ms, fields, client_id)

    def fingerprint(self) -> str:
        """What makes two creates the same request (the new id aside)."""
        return digest(dump_json([self.timeout_ms, self.client_id, self.fields]))


class Tagged(dict[str, Any]):
    """A representation and the ETag of the state it shows (serialized as the plain dict)."""

    __slots__ = ("etag", "last_seq")

    def __init__(self, body: dict[str, Any], etag: str, last_seq: int = 0) -> None:
        super().__init__(body)
        self.etag = etag
        # A session's highest message id (seq): after a rewind it is above message_count,
        # so a snapshot read (export) bounds itself by this, not by the count.
        self.last_seq = last_seq


@dataclass(frozen=True, slots=True)
class CreateResult:
    session: Tagged
    resumed: bool  # the caller's live session with the same client_id, not a new one
    evicted: tuple[str, ...] = ()  # sessions deleted to make room (evict_oldest)


@dataclass(frozen=True, slots=True)
class Appended:
    message: dict[str, Any]
    total: int
    status: str
    replayed: bool
    etag: str = ""  # of the messages collection after the append


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One message to append, as the caller gave it (the store estimates missing counts)."""

    role: str
    content: str
    metadata: dict[str, Any] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    token_count: int | None = None


@dataclass(frozen=True, slots=True)
class AppendedBatch:
    messages: list[dict[str, Any]]  # as stored, in the batch's order
    total: int
    status: str
    replayed: bool
    etag: str  # of the messages collection after the batch


class Unset(Enum):
    """The type of `UNSET`."""

    UNSET = "UNSET"


#: "Not given": an update leaves the field as it is (None clears it).
UNSET = Unset.UNSET


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """What a search asks for, as the caller said it; the store folds and encodes."""

    statuses: Sequence[str]
    query: str = ""  # case-insensitive substring of title or description
    session_type: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    metadata: Mapping[str, Any] | None = None  # exact values


@dataclass(frozen=True, slots=True)
class Limits:
    max_sessions_per_user: int
    max_messages_per_session: int
    archived_ttl_ms: int
    idempotency_ttl_ms: int
    evict_oldest: bool = False  # SESSION_LIMIT_POLICY=evict_oldest
    max_cases_per_session: int = 100
    # The request bounds pydantic checks, passed on to the script that merges metadata
    # and context: one definition (domain/models.py), enforced on both sides.
    max_json_keys: int = MAX_JSON_KEYS
    max_json_bytes: int = MAX_JSON_BYTES


def canonical_pairs(obj: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    """A metadata/context patch as (key, canonical json | '' to remove) pairs."""
    if not obj:
        return ()
    return tuple((key, "" if value is None else dump_json(value)) for key, value in obj.items())
