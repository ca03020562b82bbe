"""The conversation: append, pages, one message, stats and chunked export reads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from session_service import errors
from session_service.domain.ids import message_id, message_seq
from session_service.domain.text import search_fold, title_from_message
from session_service.domain.tokens import estimate_tokens
from session_service.store.base import StoreBase
from session_service.store.codec import (
    dump_json,
    iso,
    iso_or_none,
    message_from_entry,
    messages_etag,
)
from session_service.store.keys import digest
from session_service.store.protocol import BATCH_MESSAGE_FIELDS, AppendArgs, AppendBatchArgs
from session_service.store.records import Appended, AppendedBatch, NewMessage
from session_service.store.replies import AppendReplay, BatchReplay

EXPORT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A message as the append scripts take it: counted, encoded, fingerprinted."""

    message: NewMessage
    tokens: int
    estimated: bool
    metadata: str
    tool_calls: str
    call_ids: tuple[str, ...]

    @classmethod
    def of(cls, msg: NewMessage) -> _Prepared:
        estimated = msg.token_count is None
        tokens = (
            estimate_tokens(msg.content, msg.tool_calls)
            if msg.token_count is None
            else msg.token_count
        )
        return cls(
            message=msg,
            tokens=tokens,
            estimated=estimated,
            metadata=dump_json(msg.metadata) if msg.metadata else "",
            tool_calls=dump_json(msg.tool_calls) if msg.tool_calls else "",
            call_ids=tuple(call["id"] for call in msg.tool_calls or ()),
        )

    def request(self) -> list[object]:
        """What makes two appends of this message the same request (idempotency)."""
        msg = self.message
        request: list[object] = [msg.role, msg.content, msg.metadata or {}]
        if msg.tool_calls or msg.tool_call_id or msg.token_count is not None:
            request += [msg.tool_calls, msg.tool_call_id, msg.token_count]
        return request

    def stored(self, seq: int, ts: int) -> dict[str, Any]:
        """The message as stored under `seq` at `ts`, as reads return it."""
        msg = self.message
        out: dict[str, Any] = {
            "message_id": message_id(seq),
            "role": msg.role,
            "content": msg.content,
            "timestamp": iso(ts),
            "metadata": msg.metadata or {},
            "token_count": self.tokens,
            "token_count_estimated": self.estimated,
        }
        if msg.tool_calls:
            out["tool_calls"] = msg.tool_calls
        if msg.tool_call_id:
            out["tool_call_id"] = msg.tool_call_id
        return out


def _title(messages: Sequence[NewMessage]) -> str:
    """The title an untitled session takes from the first user message appended to it."""
    first = next((m for m in messages if m.role == "user"), None)
    return title_from_message(first.content) if first is not None else ""


class MessageOps(StoreBase):
    async def append(
        self,
        user_id: str,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        token_count: int | None = None,
        if_match: str = "",
    ) -> Appended:
        """Append one message. The first user message titles an untitled session.

        With an idempotency key, a retry of the same message answers what the first
        one did; the same key with another message is refused.
        """
        msg = NewMessage(role, content, metadata, tool_calls, tool_call_id, token_count)
        prepared = _Prepared.of(msg)
        title = _title((msg,))
        args = AppendArgs(
            sid=session_id,
            role=role,
            content=content,
            metadata=prepared.metadata,
            title=title,
            title_folded=search_fold(title),
            idem=digest(idempotency_key) if idempotency_key else "",
            fingerprint=digest(dump_json(prepared.request())) if idempotency_key else "",
            max_messages=self.limits.max_messages_per_session,
            idem_ttl_ms=self.limits.idempotency_ttl_ms,
            if_match=if_match,
            tokens=prepared.tokens,
            estimated=prepared.estimated,
            tool_calls=prepared.tool_calls,
            tool_call_id=tool_call_id or "",
            call_ids=prepared.call_ids,
        )
        reply = await self._write(self.scripts.append, user_id, args)
        if isinstance(reply, AppendReplay):
            # The message went with a rewind that an earlier release made (a rewind
            # now forgets the keys of the appends it removes): the key is spent.
            if reply.entry is None:
                raise errors.IdempotencyKeyReused()
            replayed = message_from_entry(*reply.entry)
            return Appended(replayed, reply.messages, reply.status, True, reply.etag)
        message = prepared.stored(reply.seq, reply.ts)
        return Appended(message, reply.messages, reply.status, False, reply.etag)

    async def append_batch(
        self,
        user_id: str,
        session_id: str,
        messages: Sequence[NewMessage],
        idempotency_key: str | None = None,
        *,
        if_match: str = "",
    ) -> AppendedBatch:
        """Append `messages` (a whole agent turn) in one step, all or nothing.

        Each message follows `append`'s rules as if the ones before it were already
        stored (a tool result may answer a call of an earlier one). A refusal names
        the message at fault (`ServiceError.in_batch`) and stores nothing. One
        Idempotency-Key covers the batch: a retry answers what the first one did.
        """
        prepared = [_Prepared.of(msg) for msg in messages]
        encoded: list[str] = []
        for p in prepared:
            msg = p.message
            fields = {
                "role": msg.role,
                "content": msg.content,
                "metadata": p.metadata,
                "tokens": str(p.tokens),
                "estimated": "1" if p.estimated else "0",
                "tool_calls": p.tool_calls,
                "tool_call_id": msg.tool_call_id or "",
                "calls": str(len(p.call_ids)),
            }
            encoded += [fields[name] for name in BATCH_MESSAGE_FIELDS]
        title = _title(messages)
        fingerprint = ""
        if idempotency_key:  # never equal to a single append's (a list starting with a role)
            fingerprint = digest(dump_json(["batch", [p.request() for p in prepared]]))
        args = AppendBatchArgs(
            sid=session_id,
            title=title,
            title_folded=search_fold(title),
            idem=digest(idempotency_key) if idempotency_key else "",
            fingerprint=fingerprint,
            max_messages=self.limits.max_messages_per_session,
            idem_ttl_ms=self.limits.idempotency_ttl_ms,
            if_match=if_match,
            messages=tuple(encoded),
            call_ids=tuple(cid for p in prepared for cid in p.call_ids),
        )
        # A refusal names the message at fault (its index, decoded with it).
        reply = await self._write(self.scripts.append_batch, user_id, args)
        if isinstance(reply, BatchReplay):
            # A rewind that removed some of the batch but not all keeps its key (the
            # record is scored by the batch's first message): the key is spent.
            if len(reply.entries) != len(messages):
                raise errors.IdempotencyKeyReused()
            replayed = [message_from_entry(*entry) for entry in reply.entries]
            return AppendedBatch(replayed, reply.messages, reply.status, True, reply.etag)
        stored = [p.stored(reply.first + i, reply.ts) for i, p in enumerate(prepared)]
        return AppendedBatch(stored, reply.messages, reply.status, False, reply.etag)

    async def messages_page(
        self,
        user_id: str,
        session_id: str,
        limit: int,
        order: str | None,
        after: str | None,
        before: str | None,
    ) -> tuple[int, list[dict[str, Any]], bool, str]:
        """(total, messages in response order, has_more, the collection's ETag)."""
        key = self.keys.messages(user_id, session_id)
        pipe = self.client.pipeline(transaction=False)
        # The hash first, so the ETag is never newer than the page (get_with_messages).
        pipe.hmget(self.keys.session(user_id, session_id), "mc", "ca", "mv")
        # Exclusive cursors as inclusive bounds: msg_0000000000 is a valid cursor, and
        # no entry 0-0 ever exists (an exclusive "(0-0" end is a Redis error).
        if order == "asc":
            start = f"0-{(message_seq(after) or 0) + 1}" if after else "-"
            pipe.xrange(key, start, "+", count=limit + 1)
        elif order == "desc":
            end = f"0-{max((message_seq(before) or 0) - 1, 0)}" if before else "+"
            pipe.xrevrange(key, end, "-", count=limit + 1)
        else:
            pipe.xrevrange(key, "+", "-", count=limit)
        (count, ca, version), entries = await pipe.execute()
        if ca is None:
            raise errors.SessionNotFound()
        total = int(count or 0)
        etag = messages_etag({"ca": ca, "mv": version or "0"})
        if order is None:
            messages = [message_from_entry(i, f) for i, f in reversed(entries)]
            return total, messages, len(messages) < total, etag
        has_more = len(entries) > limit
        return total, [message_from_entry(i, f) for i, f in entries[:limit]], has_more, etag

    async def message(self, user_id: str, session_id: str, msg_id: str) -> dict[str, Any]:
        seq = message_seq(msg_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.keys.session(user_id, session_id))
        pipe.xrange(self.keys.messages(user_id, session_id), f"0-{seq}", f"0-{seq}", count=1)
        exists, entries = await pipe.execute()
        if not exists:
            raise errors.SessionNotFound()
        if seq is None or not entries:
            raise errors.MessageNotFound()
        entry_id, fields = entries[0]
        return message_from_entry(entry_id, fields)

    async def stats(self, user_id: str, session_id: str) -> dict[str, Any]:
        f = await self.client.hgetall(self.keys.session(user_id, session_id))
        if not f:
            raise errors.SessionNotFound()
        created = int(f["ca"])
        last = int(f.get("lm") or f["la"])
        return {
            "session_id": session_id,
            "status": f["st"],
            "message_count": int(f.get("mc", 0)),
            "user_message_count": int(f.get("nu", 0)),
            "assistant_message_count": int(f.get("na", 0)),
            "system_message_count": int(f.get("ns", 0)),
            "tool_message_count": int(f.get("nt", 0)),
            "total_tokens": int(f.get("tk", 0)),
            "total_tokens_by_role": {
                role: int(f.get(f"k{role[0]}", 0))
                for role in ("user", "assistant", "system", "tool")
            },
            "first_message_at": iso_or_none(f.get("fm")),
            "last_message_at": iso_or_none(f.get("lm")),
            "duration_seconds": max(0, last - created) / 1000,
            "created_at": iso(created),
            "last_activity_at": iso(int(f["la"])),
            "expires_at": iso_or_none(f.get("ea")),
        }

    async def iter_messages(
        self, user_id: str, session_id: str, upto: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every message up to seq `upto`, in bounded chunks (for streaming export)."""
        key = self.keys.messages(user_id, session_id)
        start = "-"
        while True:
            entries = await self.client.xrange(key, start, f"0-{upto}", count=EXPORT_CHUNK)
            if not entries:
                return
            yield [message_from_entry(i, f) for i, f in entries]
            if len(entries) < EXPORT_CHUNK:
                return
            start = f"({entries[-1][0]}"
