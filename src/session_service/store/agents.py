"""The store's side of agent conversations: the prompt window and summaries.

A mixin of `SessionStore` (it uses the store's client, keys, limits and script
runners), kept apart so the session store stays a readable size.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, TypeVar

from session_service import errors
from session_service.domain.ids import message_id, summary_id
from session_service.domain.tokens import (
    WINDOW_MAX_BYTES,
    WINDOW_MAX_MESSAGES,
    estimate_tokens,
)
from session_service.store.codec import dump_json, iso, message_from_entry, summary_from_entry
from session_service.store.keys import Keys, digest
from session_service.store.protocol import ScriptArgs, SummarizeArgs, WindowArgs
from session_service.store.records import Limits, Tagged
from session_service.store.replies import SummaryReplay
from session_service.store.scripts import Script, Scripts

WINDOW_CHUNK = 128  # the largest; window.lua sizes its reads from the mean tokens
SUMMARY_CHUNK = 500
R = TypeVar("R")


class _Store(Protocol):
    client: Any
    keys: Keys
    limits: Limits
    scripts: Scripts

    async def _read(self, script: Script, user_id: str, args: ScriptArgs[R]) -> R: ...

    async def _write(self, script: Script, user_id: str, args: ScriptArgs[R]) -> R: ...


class AgentStore:
    async def window(
        self: _Store, user_id: str, session_id: str, max_tokens: int
    ) -> dict[str, Any]:
        """The latest summary and the newest messages after it within `max_tokens`."""
        window = await self._read(
            self.scripts.window,
            user_id,
            WindowArgs(
                sid=session_id,
                max_tokens=max_tokens,
                max_messages=WINDOW_MAX_MESSAGES,
                largest_chunk=WINDOW_CHUNK,
                max_bytes=WINDOW_MAX_BYTES,
            ),
        )
        summary = summary_from_entry(*window.summary) if window.summary else None
        messages = [message_from_entry(*entry) for entry in window.messages]
        return {
            "summary": summary,
            "messages": messages,
            "total_tokens": window.tokens,
            "truncated": window.truncated,
            "first_message_id": messages[0]["message_id"] if messages else None,
        }

    async def summarize(
        self: _Store,
        user_id: str,
        session_id: str,
        content: str,
        covers_through: int,
        token_count: int | None,
        metadata: dict[str, Any] | None,
        idempotency_key: str | None = None,
        if_match: str = "",
    ) -> tuple[Tagged, bool]:
        """(the summary up to message seq `covers_through` with the messages ETag after,
        replayed); the originals stay."""
        tokens = estimate_tokens(content) if token_count is None else token_count
        # Scoped to the session: the same key may name a create or another session's summary.
        idem = digest(f"summary\0{session_id}\0{idempotency_key}") if idempotency_key else ""
        fingerprint = ""
        if idempotency_key:
            fingerprint = digest(dump_json([content, covers_through, token_count, metadata]))
        args = SummarizeArgs(
            sid=session_id,
            content=content,
            tokens=tokens,
            estimated=token_count is None,
            covers_through=covers_through,
            metadata=dump_json(metadata) if metadata else "",
            max_messages=self.limits.max_messages_per_session,
            idem=idem,
            fingerprint=fingerprint,
            idem_ttl_ms=self.limits.idempotency_ttl_ms,
            if_match=if_match,
        )
        reply = await self._write(self.scripts.summarize, user_id, args)
        if isinstance(reply, SummaryReplay):
            if reply.entry is None:  # the summary went with a rewind; the key is spent
                raise errors.IdempotencyKeyReused()
            return Tagged(summary_from_entry(*reply.entry), reply.etag), True
        body = {
            "summary_id": summary_id(reply.seq),
            "covers_through": message_id(covers_through),
            "content": content,
            "token_count": tokens,
            "token_count_estimated": token_count is None,
            "created_at": iso(reply.created_ms),
            "metadata": metadata or {},
        }
        return Tagged(body, reply.etag), False

    async def summaries_page(
        self: _Store, user_id: str, session_id: str, limit: int, before: int | None
    ) -> tuple[int, list[dict[str, Any]], bool]:
        """(total, summaries newest first, has_more), from just before seq `before`."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.keys.session(user_id, session_id), "st", "sn")
        # Exclusive cursor as an inclusive bound: there is no entry 0-0.
        end = f"0-{max(before - 1, 0)}" if before is not None else "+"
        pipe.xrevrange(self.keys.summaries(user_id, session_id), end, "-", count=limit + 1)
        (status, total), entries = await pipe.execute()
        if status is None:
            raise errors.SessionNotFound()
        summaries = [summary_from_entry(i, f) for i, f in entries[:limit]]
        return int(total or 0), summaries, len(entries) > limit

    async def iter_summaries(
        self: _Store, user_id: str, session_id: str
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every summary, oldest first, in bounded chunks (for the streamed export)."""
        key = self.keys.summaries(user_id, session_id)
        start = "-"
        while True:
            entries = await self.client.xrange(key, start, "+", count=SUMMARY_CHUNK)
            if not entries:
                return
            yield [summary_from_entry(i, f) for i, f in entries]
            if len(entries) < SUMMARY_CHUNK:
                return
            start = f"({entries[-1][0]}"
