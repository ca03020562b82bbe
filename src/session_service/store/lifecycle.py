"""Sessions: create (or resume), read, list, update, delete, heartbeat, archive, restore."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from session_service import errors
from session_service.domain.status import allowed_from
from session_service.domain.text import search_fold
from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import (
    iso,
    iso_or_none,
    last_seq,
    message_from_entry,
    messages_etag,
    session_etag,
    session_from_fields,
)
from session_service.store.keys import digest
from session_service.store.protocol import (
    ArchiveArgs,
    ClearContextArgs,
    CreateArgs,
    DeleteArgs,
    HeartbeatArgs,
    ListArgs,
    RestoreArgs,
    UpdateArgs,
)
from session_service.store.records import (
    UNSET,
    CreateResult,
    NewSession,
    Tagged,
    Unset,
    canonical_pairs,
)
from session_service.store.replies import CreateAgain, CreateReplay


def _tagged(session_id: str, user_id: str, fields: dict[str, str]) -> Tagged:
    body = session_from_fields(session_id, user_id, fields)
    return Tagged(body, session_etag(fields), last_seq(fields))


def _text_change(value: str | Unset | None) -> tuple[str, str]:
    """update.lua's encoding of a text change: '0' untouched, '1' set, '2' clear."""
    if value is UNSET:
        return "0", ""
    return ("1", value) if value else ("2", "")


class SessionOps(StoreBase):
    def _create_args(self, new: NewSession, idempotency_key: str | None) -> CreateArgs:
        return CreateArgs(
            sid=new.session_id,
            timeout_ms=new.timeout_ms,
            client_id=new.client_id or "",
            idem=digest(idempotency_key) if idempotency_key else "",
            fingerprint=new.fingerprint() if idempotency_key else "",
            idem_ttl_ms=self.limits.idempotency_ttl_ms,
            max_sessions=self.limits.max_sessions_per_user,
            evict_oldest=self.limits.evict_oldest,
            fields=tuple(zip(new.fields[::2], new.fields[1::2], strict=True)),
        )

    async def create(
        self, user_id: str, new: NewSession, idempotency_key: str | None = None
    ) -> CreateResult:
        """A new session, or the caller's live one with the same client_id (resumed).

        With an idempotency key, a retry of the same request answers what the first
        one did; the same key with another request is refused.
        """
        args = self._create_args(new, idempotency_key)
        evicted: list[str] = []
        while True:
            reply = await self._write(self.scripts.create, user_id, args)
            if not isinstance(reply, CreateAgain):
                break
            # A bounded step of evicting or pruning, nothing created yet.
            count_expired(reply.pruned)
            evicted += self._record_evictions(user_id, reply.evicted)
        if isinstance(reply, CreateReplay):
            outcome = reply.outcome
        else:
            outcome = reply.tag
            count_expired(reply.pruned)
            evicted += self._record_evictions(user_id, reply.evicted)
        session = _tagged(reply.session_id, user_id, reply.fields)
        return CreateResult(session, resumed=outcome == "resumed", evicted=tuple(evicted))

    async def create_many(
        self, user_id: str, news: Sequence[NewSession], chunk: int = 1000
    ) -> None:
        """Create sessions through the real create script, pipelined (benchmarks, bulk loads)."""
        await self.client.script_load(self.scripts.create.source)
        base = self.keys.base(user_id)
        for start in range(0, len(news), chunk):
            pipe = self.client.pipeline(transaction=False)
            batch = news[start : start + chunk]
            calls = [self._create_args(new, None) for new in batch]
            for args in calls:
                pipe.evalsha(self.scripts.create.sha, 1, base, *args.argv())
            for new, args, raw in zip(batch, calls, await pipe.execute(), strict=True):
                if isinstance(args.decode(raw), CreateAgain):  # a bounded step: once more
                    await self.create(user_id, new)

    async def get(self, user_id: str, session_id: str) -> Tagged:
        fields = await self.client.hgetall(self.keys.session(user_id, session_id))
        if not fields:
            raise errors.SessionNotFound()
        return _tagged(session_id, user_id, fields)

    async def get_with_messages(self, user_id: str, session_id: str, limit: int) -> Tagged:
        # The hash is read first: a write landing in between makes the ETag older than
        # the messages, never newer, so an If-Match based on it cannot skip a message.
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(self.keys.session(user_id, session_id))
        pipe.xrevrange(self.keys.messages(user_id, session_id), "+", "-", count=limit)
        fields, entries = await pipe.execute()
        if not fields:
            raise errors.SessionNotFound()
        session = _tagged(session_id, user_id, fields)
        session["messages"] = [message_from_entry(i, f) for i, f in reversed(entries)]
        return session

    async def current_etag(self, user_id: str, session_id: str, kind: str) -> str:
        """The session's ('s') or its messages' ('m') ETag; 404 when it does not exist."""
        version = "mv" if kind == "m" else "ev"
        ca, value = await self.client.hmget(self.keys.session(user_id, session_id), "ca", version)
        if ca is None:
            raise errors.SessionNotFound()
        fields = {"ca": ca, version: value or "0"}
        return messages_etag(fields) if kind == "m" else session_etag(fields)

    async def exists(self, user_id: str, session_id: str) -> bool:
        return bool(await self.client.exists(self.keys.session(user_id, session_id)))

    async def list_sessions(
        self, user_id: str, statuses: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        while True:  # each call prunes a bounded batch; the page waits for an exact index
            page = await self._read(
                self.scripts.list,
                user_id,
                ListArgs(offset=offset, limit=limit, statuses=tuple(statuses)),
            )
            count_expired(page.pruned)
            if page.total >= 0:
                break
        sessions = [
            session_from_fields(row.session_id, user_id, row.fields)
            for row in page.rows
            if row.fields  # expired while the page was read
        ]
        return page.total, sessions

    async def update(
        self,
        user_id: str,
        session_id: str,
        *,
        title: str | Unset | None = UNSET,
        description: str | Unset | None = UNSET,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        timeout_ms: int | None = None,
        if_match: str = "",
    ) -> Tagged:
        """Change what is given, atomically; the session as it is afterwards.

        A title or description left UNSET stays, None or "" clears it. Metadata and
        context merge: a key set to None is removed. The status follows the
        transition rules; an archived session only takes an update that changes nothing.
        """
        target = status or ""
        title_op, title_text = _text_change(title)
        desc_op, desc_text = _text_change(description)
        args = UpdateArgs(
            sid=session_id,
            title_op=title_op,
            title=title_text,
            title_folded=search_fold(title_text),
            desc_op=desc_op,
            desc=desc_text,
            desc_folded=search_fold(desc_text),
            status=target,
            allowed_from=",".join(allowed_from(target)) if target else "",
            archived_ttl_ms=self.limits.archived_ttl_ms,
            max_keys=self.limits.max_json_keys,
            max_bytes=self.limits.max_json_bytes,
            metadata=canonical_pairs(metadata),
            context=canonical_pairs(context),
            timeout_ms=timeout_ms,
            if_match=if_match,
        )
        reply = await self._write(self.scripts.update, user_id, args, target)
        return _tagged(session_id, user_id, reply.fields)

    async def delete(self, user_id: str, session_id: str, if_match: str = "") -> None:
        await self._write(
            self.scripts.delete, user_id, DeleteArgs(sid=session_id, if_match=if_match)
        )

    async def heartbeat(self, user_id: str, session_id: str) -> Tagged:
        reply = await self._write(self.scripts.heartbeat, user_id, HeartbeatArgs(sid=session_id))
        body = {
            "session_id": session_id,
            "status": reply.status,
            "last_activity_at": iso(reply.last_activity_ms),
            "expires_at": iso_or_none(str(reply.expires_ms)),
        }
        return Tagged(body, reply.etag)

    async def archive(self, user_id: str, session_id: str, if_match: str = "") -> Tagged:
        args = ArchiveArgs(
            sid=session_id, archived_ttl_ms=self.limits.archived_ttl_ms, if_match=if_match
        )
        reply = await self._write(self.scripts.archive, user_id, args)
        return _tagged(session_id, user_id, reply.fields)

    async def restore(self, user_id: str, session_id: str, if_match: str = "") -> Tagged:
        reply = await self._write(
            self.scripts.restore, user_id, RestoreArgs(sid=session_id, if_match=if_match)
        )
        return _tagged(session_id, user_id, reply.fields)

    async def clear_context(
        self, user_id: str, session_id: str, if_match: str = ""
    ) -> tuple[list[str], str]:
        """(the context keys removed, the session's ETag after)."""
        reply = await self._write(
            self.scripts.clear_context, user_id, ClearContextArgs(sid=session_id, if_match=if_match)
        )
        return list(reply.removed), reply.etag
