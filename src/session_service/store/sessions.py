"""The session store: every Redis call the service makes goes through here.

Writes are single Lua scripts (atomic, one round trip); reads are single
commands or one non-transactional pipeline. Every method takes the caller's
user id and only ever touches keys under that user's hash tag.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from session_service import errors
from session_service.domain.ids import message_id, message_seq
from session_service.domain.legacy import LegacySession
from session_service.domain.status import allowed_from
from session_service.domain.tokens import estimate_tokens
from session_service.observability.metrics import SESSIONS, instrument_store
from session_service.store import importing
from session_service.store.account import AccountMixin
from session_service.store.agents import AgentStore
from session_service.store.codec import (
    decode_cursor,
    dump_json,
    encode_cursor,
    iso,
    iso_or_none,
    message_from_entry,
    messages_etag,
    pairs,
    session_etag,
    session_from_fields,
)
from session_service.store.connection import RedisClient, eval_and_wait
from session_service.store.erasure import erase_user
from session_service.store.errors import script_error
from session_service.store.keys import Keys, digest
from session_service.store.records import (
    Appended,
    CreateResult,
    Limits,
    NewSession,
    Patch,
    SearchFilters,
    Tagged,
    canonical_pairs,
)
from session_service.store.retries import again_on_connection_error, retry_reads
from session_service.store.scripts import Script, load_scripts

__all__ = [
    "EXPORT_CHUNK",
    "Appended",
    "CreateResult",
    "Limits",
    "NewSession",
    "Patch",
    "SearchFilters",
    "SessionStore",
    "Tagged",
    "canonical_pairs",
]

SEARCH_CHUNK = 2000
EXPORT_CHUNK = 500


def _ok(reply: list[Any], target_status: str | None = None) -> list[Any]:
    if reply[0] == "err":
        raise script_error(reply, target_status)
    return reply


def _tagged(session_id: str, user_id: str, fields: dict[str, str]) -> Tagged:
    return Tagged(session_from_fields(session_id, user_id, fields), session_etag(fields))


def _count_expired(pruned: Any) -> None:
    """Every script that prunes reports how many expired sessions it removed."""
    if pruned and int(pruned) > 0:
        SESSIONS.labels("expired").inc(int(pruned))


@instrument_store
@retry_reads(
    "get", "get_with_messages", "exists", "messages_page", "message", "stats", "linked_cases",
    "user_keys", "ping", "eviction_policy", "window", "summaries_page",
)  # fmt: skip
class SessionStore(AccountMixin, AgentStore):
    def __init__(
        self, client: RedisClient, keys: Keys, limits: Limits, min_replicas_ack: int = 0,
        replica_ack_timeout_ms: int = 500,
    ) -> None:  # fmt: skip
        # redis-py's command stubs mix bytes and str; replies are decoded strings here.
        self.client: Any = client
        self.keys = keys
        self.limits = limits
        self.scripts = load_scripts()
        self.min_replicas_ack = min_replicas_ack
        self.replica_ack_timeout_ms = replica_ack_timeout_ms
        self.is_cluster = isinstance(client, RedisCluster)

    # ---- plumbing -------------------------------------------------------

    async def _read(self, script: Script, user_id: str, args: list[str | int]) -> Any:
        return await script(self.client, [self.keys.base(user_id)], args)

    async def _write(self, script: Script, user_id: str, args: list[str | int]) -> Any:
        """Run a writing script; with REDIS_MIN_REPLICAS_ACK, WAIT in the same round trip."""
        # Reads that only prune expired index entries need no replica: losing a prune
        # loses nothing, and listing must keep working while a replica is down.
        if self.min_replicas_ack == 0 or script.name in ("list", "search", "prune", "statistics"):
            return await script(self.client, [self.keys.base(user_id)], args)
        return await self._write_acked(script, self.keys.base(user_id), args)

    async def _write_acked(self, script: Script, base: str, args: list[str | int]) -> Any:
        for _ in range(2):
            reply, acked = await eval_and_wait(
                self.client, script.sha, base, args, self.min_replicas_ack,
                self.replica_ack_timeout_ms,
            )  # fmt: skip
            if isinstance(reply, NoScriptError):
                # Loading a script twice is harmless, so a dropped connection is retried.
                await again_on_connection_error(lambda: self.client.script_load(script.source))
                continue
            if isinstance(reply, Exception):
                raise reply
            if isinstance(acked, Exception):
                raise acked
            refused = isinstance(reply, list) and reply[:1] == ["err"]  # nothing was written
            if not refused and int(acked) < self.min_replicas_ack:
                raise errors.StorageUnavailable(
                    f"The write reached {acked} of {self.min_replicas_ack} required replicas in "
                    "time; it may not survive a failover. Retry with the same Idempotency-Key."
                )
            return reply
        raise errors.StorageUnavailable()

    # ---- sessions -------------------------------------------------------

    async def create(
        self, user_id: str, new: NewSession, idempotency_key: str | None, fingerprint: str
    ) -> CreateResult:
        args: list[str | int] = [
            new.session_id,
            new.timeout_ms,
            new.client_id or "",
            digest(idempotency_key) if idempotency_key else "",
            fingerprint,
            self.limits.idempotency_ttl_ms,
            self.limits.max_sessions_per_user,
            "1" if self.limits.evict_oldest else "0",
            *new.fields,
        ]
        evicted: list[str] = []
        while True:
            reply = _ok(await self._write(self.scripts.create, user_id, args))
            if reply[0] != "again":  # 'again': a bounded step of evicting or pruning, no create
                break
            _count_expired(reply[1])
            evicted += self._record_evictions(user_id, reply[2])
        if reply[0] == "replay":
            code, sid, fields = int(reply[1]), reply[2], reply[3]
        else:
            code, sid, fields = (201 if reply[0] == "created" else 200), reply[1], reply[2]
            _count_expired(reply[3])
            evicted += self._record_evictions(user_id, reply[4] if len(reply) > 4 else [])
        return CreateResult(code, _tagged(sid, user_id, pairs(fields)), tuple(evicted))

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

    async def import_legacy(self, session: LegacySession, ttl_ms: int) -> str | None:
        """Write a session of the original service (import-legacy); None, or why skipped."""
        return await importing.import_session(self, session, ttl_ms)

    async def legacy_state(self, user_id: str, session_id: str) -> str | None:
        """Why import-legacy would skip this session, or None (a read, for --dry-run)."""
        return await importing.imported_state(self, user_id, session_id)

    async def list_sessions(
        self, user_id: str, statuses: Sequence[str], offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        reply = await self._write(self.scripts.list, user_id, [offset, limit, *statuses])
        total = int(reply[0])
        _count_expired(reply[1])
        sessions = [
            session_from_fields(reply[i], user_id, pairs(reply[i + 1]))
            for i in range(2, len(reply), 2)
            if reply[i + 1]
        ]
        return total, sessions

    async def update(
        self, user_id: str, session_id: str, patch: Patch, if_match: str = ""
    ) -> Tagged:
        target = patch.status or ""
        args: list[str | int] = [
            session_id,
            patch.title_op, patch.title, patch.title_folded,
            patch.description_op, patch.description, patch.description_folded,
            target,
            ",".join(allowed_from(target)) if target else "",
            self.limits.archived_ttl_ms,
            self.limits.max_json_keys,
            self.limits.max_json_bytes,
            len(patch.metadata),
            *[part for pair in patch.metadata for part in pair],
            len(patch.context),
            *[part for pair in patch.context for part in pair],
            "" if patch.timeout_ms is None else patch.timeout_ms,
            if_match,
        ]  # fmt: skip
        reply = _ok(await self._write(self.scripts.update, user_id, args), target)
        return _tagged(session_id, user_id, pairs(reply[1]))

    async def delete(self, user_id: str, session_id: str, if_match: str = "") -> None:
        _ok(await self._write(self.scripts.delete, user_id, [session_id, if_match]))

    async def heartbeat(self, user_id: str, session_id: str) -> Tagged:
        reply = _ok(await self._write(self.scripts.heartbeat, user_id, [session_id]))
        body = {
            "session_id": session_id,
            "status": reply[1],
            "last_activity_at": iso(int(reply[2])),
            "expires_at": iso_or_none(str(reply[3])),
        }
        return Tagged(body, reply[4])

    async def archive(self, user_id: str, session_id: str, if_match: str = "") -> Tagged:
        args: list[str | int] = [session_id, self.limits.archived_ttl_ms, if_match]
        reply = _ok(await self._write(self.scripts.archive, user_id, args))
        return _tagged(session_id, user_id, pairs(reply[1]))

    async def restore(self, user_id: str, session_id: str, if_match: str = "") -> Tagged:
        reply = _ok(await self._write(self.scripts.restore, user_id, [session_id, if_match]))
        return _tagged(session_id, user_id, pairs(reply[1]))

    async def clear_context(
        self, user_id: str, session_id: str, if_match: str = ""
    ) -> tuple[list[str], str]:
        """(the context keys removed, the session's ETag after)."""
        reply = _ok(await self._write(self.scripts.clear_context, user_id, [session_id, if_match]))
        return [str(key) for key in reply[1]], reply[2]

    # ---- messages -------------------------------------------------------

    async def append(
        self,
        user_id: str,
        session_id: str,
        role: str,
        content: str,
        metadata: dict[str, Any] | None,
        title: tuple[str, str] | None,
        idempotency_key: str | None,
        fingerprint: str,
        *,
        tool_calls: list[dict[str, Any]] | None = None,
        tool_call_id: str | None = None,
        token_count: int | None = None,
        if_match: str = "",
    ) -> Appended:
        metadata_json = dump_json(metadata) if metadata else ""
        estimated = token_count is None
        tokens = estimate_tokens(content, tool_calls) if token_count is None else token_count
        reply = _ok(
            await self._write(
                self.scripts.append,
                user_id,
                [
                    session_id, role, content, metadata_json,
                    title[0] if title else "", title[1] if title else "",
                    digest(idempotency_key) if idempotency_key else "", fingerprint,
                    self.limits.max_messages_per_session, self.limits.idempotency_ttl_ms,
                    if_match,
                    tokens, "1" if estimated else "0",
                    dump_json(tool_calls) if tool_calls else "", tool_call_id or "",
                    *[call["id"] for call in tool_calls or ()],
                ],
            )
        )  # fmt: skip
        if reply[0] == "replay":
            entry_id, fields = reply[4][0]
            replayed = message_from_entry(entry_id, fields)
            return Appended(replayed, int(reply[2]), reply[3], True, reply[5])
        seq, ts = int(reply[1]), int(reply[2])
        message: dict[str, Any] = {
            "message_id": message_id(seq),
            "role": role,
            "content": content,
            "timestamp": iso(ts),
            "metadata": metadata or {},
            "token_count": tokens,
            "token_count_estimated": estimated,
        }
        if tool_calls:
            message["tool_calls"] = tool_calls
        if tool_call_id:
            message["tool_call_id"] = tool_call_id
        return Appended(message, int(reply[3]), reply[4], False, reply[5])

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

    # ---- search ---------------------------------------------------------

    async def search(
        self, user_id: str, filters: SearchFilters, limit: int, cursor: str | None
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        """Every match counted (exact total), one page returned, newest activity first."""
        statuses = list(filters.statuses)
        fixed: list[str | int] = [
            len(statuses),
            *statuses,
            filters.query,
            filters.session_type,
            *("" if v is None else v for v in (
                filters.created_after, filters.created_before,
                filters.updated_after, filters.updated_before,
            )),
            len(filters.metadata),
            *[part for key, value in filters.metadata for part in (f"m:{key}", value)],
        ]  # fmt: skip
        matches: list[tuple[float, str]] = []
        pos, rank, first = 1, 0, True
        while pos:
            reply = await self._write(
                self.scripts.search,
                user_id,
                ["1" if first else "0", SEARCH_CHUNK, pos, rank, *fixed],
            )
            first = False
            pos, rank = int(reply[0]), int(reply[1])
            _count_expired(reply[2])
            matches.extend((float(reply[i + 1]), reply[i]) for i in range(3, len(reply), 2))
        matches.sort(reverse=True)
        page_start = 0
        if cursor:
            position = decode_cursor(cursor)
            page_start = next(
                (i for i, (score, sid) in enumerate(matches) if (score, sid) < position),
                len(matches),
            )
        page = matches[page_start : page_start + limit]
        sessions = await self._get_many(user_id, [sid for _, sid in page])
        more = page_start + limit < len(matches)
        next_cursor = encode_cursor(page[-1][0], page[-1][1]) if more and page else None
        return len(matches), sessions, next_cursor

    async def _get_many(self, user_id: str, session_ids: list[str]) -> list[dict[str, Any]]:
        if not session_ids:
            return []
        pipe = self.client.pipeline(transaction=False)
        for sid in session_ids:
            pipe.hgetall(self.keys.session(user_id, sid))
        results = await pipe.execute()
        return [
            session_from_fields(sid, user_id, fields)
            for sid, fields in zip(session_ids, results, strict=True)
            if fields
        ]

    # ---- cases ----------------------------------------------------------

    async def link_case(self, user_id: str, session_id: str, case_id: str) -> str:
        reply = _ok(await self._write(self.scripts.link_case, user_id, [session_id, case_id]))
        return iso(int(reply[1]))

    async def unlink_case(self, user_id: str, session_id: str, case_id: str) -> bool:
        reply = _ok(await self._write(self.scripts.unlink_case, user_id, [session_id, case_id]))
        return bool(reply[1])

    async def linked_cases(self, user_id: str, session_id: str) -> list[tuple[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.keys.session(user_id, session_id))
        pipe.zrange(self.keys.cases(user_id, session_id), 0, -1, withscores=True)
        exists, rows = await pipe.execute()
        if not exists:
            raise errors.SessionNotFound()
        return [(case_id, iso(int(score))) for case_id, score in rows]

    # ---- maintenance ----------------------------------------------------

    async def cleanup_user(self, user_id: str) -> tuple[int, int]:
        """(expired sessions removed from the indexes, index entries scanned)."""
        removed, scanned = await self._write(self.scripts.prune, user_id, [])
        _count_expired(removed)
        return int(removed), int(scanned)

    async def cleanup_all(
        self, progress: Callable[[int, int, int], None] | None = None
    ) -> tuple[int, int]:
        """Prune every user's indexes; SCANs every master, never KEYS.

        `progress(users, scanned, removed)` is called after each user (the CLI shows it).
        """
        removed = scanned = users = 0
        async for key in self._scan(self.keys.expiry_pattern()):
            base = self.keys.base_from_expiry_key(key)
            r, s = await self.scripts.prune(self.client, [base], [])
            _count_expired(r)
            removed += int(r)
            scanned += int(s)
            users += 1
            if progress is not None:
                progress(users, scanned, removed)
        return removed, scanned

    async def erase_user(self, user_id: str) -> tuple[int, int]:
        """(live sessions deleted, keys deleted): every key under the user's tag."""
        return await erase_user(self, user_id)

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        async for key in self.client.scan_iter(match=pattern, count=1000):
            yield key

    async def user_keys(self, user_id: str) -> list[str]:
        return [key async for key in self._scan(self.keys.user_pattern(user_id))]

    async def hit_rate_limit(self, user_id: str, per_minute: int) -> int | None:
        """Seconds to wait when the user is over `per_minute`, else None."""
        now = time.time()
        minute = int(now // 60)
        key = self.keys.rate(user_id, minute)
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
        if int(count) > per_minute:
            return max(1, int((minute + 1) * 60 - now + 0.999))
        return None

    async def ping(self) -> float:
        """Round-trip latency in milliseconds (used by /ready only)."""
        started = time.perf_counter()
        await self.client.ping()
        return (time.perf_counter() - started) * 1000

    async def eviction_policy(self) -> str | None:
        try:
            reply = await self.client.config_get("maxmemory-policy")
        except Exception:  # CONFIG may be disabled by ACLs or a managed Redis
            return None
        if isinstance(reply, dict):
            value = reply.get("maxmemory-policy")
            if isinstance(value, dict):  # cluster: {node: {...}}
                value = next(iter(value.values()), None)
            return str(value) if value else None
        return None

    async def close(self) -> None:
        await self.client.aclose()
