"""Writing a session of the original service into this service's layout.

Messages are staged in bounded chunks (`import_stage.lua`), then one script
(`import_commit.lua`) renames them into place and writes the record, the
indexes, the client_id and a mark that keeps the session from being imported
twice. Until the commit nothing of the session is visible; a run that stops in
between leaves only a staging stream that expires by itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from session_legacy.codecs import AlreadyThere, ImportCommitArgs, ImportStageArgs, Skipped
from session_legacy.records import LegacyMessage, LegacySession
from session_service import errors
from session_service.domain.text import search_fold
from session_service.domain.tokens import estimate_tokens
from session_service.observability.metrics import SESSIONS
from session_service.store.codec import SCHEMA_VERSION, dump_json
from session_service.store.reply_decoding import Refusal

if TYPE_CHECKING:
    from session_service.store.base import StoreBase as SessionStore

#: One staging call moves at most this many messages or bytes (a few ms in Redis).
CHUNK_MESSAGES = 500
CHUNK_BYTES = 512 * 1024
#: An interrupted import's staged messages disappear after this long.
STAGING_TTL_MS = 3_600_000


def _count_expired(pruned: int) -> None:
    if pruned > 0:
        SESSIONS.labels("expired").inc(pruned)


def session_fields(session: LegacySession) -> list[tuple[str, str]]:
    """The stored record (without `ea`, which the commit derives from the server clock)."""
    messages = session.messages
    fields = [
        ("v", str(SCHEMA_VERSION)),
        ("st", session.status),
        ("ty", session.session_type),
        ("ca", str(session.created_ms)),
        ("ua", str(session.updated_ms)),
        ("la", str(session.last_activity_ms)),
        ("to", str(session.timeout_ms)),
        ("mc", str(len(messages))),
    ]
    counts: dict[str, int] = {}
    tokens: dict[str, int] = {}
    for message in messages:
        counts[message.role] = counts.get(message.role, 0) + 1
        tokens[message.role] = tokens.get(message.role, 0) + estimate_tokens(message.content)
    for role, count in sorted(counts.items()):
        fields += [(f"n{role[0]}", str(count)), (f"k{role[0]}", str(tokens[role]))]
    if messages:
        fields += [
            ("tk", str(sum(tokens.values()))),
            ("fm", str(messages[0].timestamp_ms)),
            ("lm", str(messages[-1].timestamp_ms)),
        ]
    if session.title:
        fields += [("t", session.title), ("tl", search_fold(session.title))]
    if session.client_id:
        fields.append(("ci", session.client_id))
    fields += [(f"m:{key}", dump_json(value)) for key, value in session.metadata.items()]
    fields += [(f"x:{key}", dump_json(value)) for key, value in session.context.items()]
    return fields


def chunks(messages: list[LegacyMessage]) -> Iterator[tuple[int, list[LegacyMessage]]]:
    """(first sequence number, messages) pieces, bounded by count and bytes."""
    first, size = 1, 0
    piece: list[LegacyMessage] = []
    for seq, message in enumerate(messages, start=1):
        weight = len(message.content) * 4 + len(message.metadata_json) + 64
        if piece and (len(piece) >= CHUNK_MESSAGES or size + weight > CHUNK_BYTES):
            yield first, piece
            first, piece, size = seq, [], 0
        piece.append(message)
        size += weight
    if piece:
        yield first, piece


async def import_session(store: SessionStore, session: LegacySession, ttl_ms: int) -> str | None:
    """Import one session: None when imported, else why it was skipped."""
    if not await stage_messages(store, session):
        return await imported_state(store, session.user_id, session.session_id) or (
            "already imported"
        )
    return await commit(store, session, ttl_ms)


async def stage_messages(store: SessionStore, session: LegacySession) -> bool:
    """Stage every message in bounded chunks; False when the session is already there."""
    for first, piece in chunks(session.messages):
        # Five arguments per message, in the order import_stage.lua reads them.
        per_message = (
            (m.role, m.content, m.timestamp_ms, m.metadata_json, estimate_tokens(m.content))
            for m in piece
        )
        messages = [str(part) for parts in per_message for part in parts]
        args = ImportStageArgs(
            sid=session.session_id,
            first_seq=first,
            staging_ttl_ms=STAGING_TTL_MS,
            messages=tuple(messages),
        )
        reply = await store._write(store.scripts.import_stage, session.user_id, args)
        if isinstance(reply, AlreadyThere):
            return False
        if isinstance(reply, Refusal):
            raise errors.StorageUnavailable(
                f"staging the messages failed ({reply.code}): another import of the same "
                "session at the same time? Run the import again."
            )
    return True


async def commit(store: SessionStore, session: LegacySession, ttl_ms: int) -> str | None:
    """Make the staged session visible with its record and indexes; None, or why skipped."""
    fields = session_fields(session)
    args = ImportCommitArgs(
        sid=session.session_id,
        status=session.status,
        last_activity_ms=session.last_activity_ms,
        remaining_ttl_ms=ttl_ms,
        client_id=session.client_id or "",
        message_count=len(session.messages),
        max_sessions=store.limits.max_sessions_per_user,
        fields=tuple(fields),
    )
    reply = await store._write(store.scripts.import_commit, session.user_id, args)
    if isinstance(reply, Refusal):
        raise errors.StorageUnavailable(
            f"committing the session failed ({reply.code}): its staged messages were "
            "incomplete. Run the import again."
        )
    _count_expired(reply.pruned)
    return reply.reason if isinstance(reply, Skipped) else None


async def imported_state(store: SessionStore, user_id: str, session_id: str) -> str | None:
    """Why an import of this session would be skipped, or None (a read: --dry-run)."""
    pipe = store.client.pipeline(transaction=False)
    pipe.exists(store.keys.imported(user_id, session_id))
    pipe.exists(store.keys.session(user_id, session_id))
    marked, present = await pipe.execute()
    if marked:
        return "already imported"
    if present:
        return "a session with this id exists"
    return None
