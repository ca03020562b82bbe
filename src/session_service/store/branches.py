"""Fork and rewind: copying and cutting a conversation without blocking Redis.

Both stay inside the 10 ms bound at 100,000 messages. A conversation is copied in
slices (`copy.lua`: at most SLICE_MAX entries or about SLICE_BYTES per call, from
an exclusive cursor) under the keys of an id that has no session record, so
nothing reads it while it grows; one last script makes it visible atomically:
`fork.lua` publishes it as a new session (so a fork is complete when its 201
arrives), `rewind_swap.lua` swaps it in for the whole conversation (so a rewind
is one step for every reader). Summaries are written without moving the rewind
generation, so the swap carries over those written since the copy that cover
only kept messages. A rewind that removes only a few entries is a
single script (`rewind.lua`) and copies nothing.

A source deleted or expired meanwhile is noticed by the next slice, which drops
the copy (404); one rewound meanwhile makes the copy start again. A copy
abandoned by a crash expires by itself (STAGING_TTL_MS).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TypeVar

from session_service import errors
from session_service.domain.ids import new_session_id
from session_service.domain.text import search_fold
from session_service.store.base import StoreBase, count_expired
from session_service.store.codec import (
    dump_json,
    last_seq,
    session_etag,
    session_from_fields,
)
from session_service.store.keys import digest
from session_service.store.protocol import (
    CopyArgs,
    ForkArgs,
    ForkBeginArgs,
    Pairs,
    RewindArgs,
    RewindSwapArgs,
)
from session_service.store.records import Tagged
from session_service.store.replies import (
    ForkReplay,
    MessagesCopied,
    RecordsCopied,
    Restart,
    RewindStaged,
    SummariesCopied,
    SwapBehind,
)
from session_service.store.reply_decoding import Fields, ReplyMismatch

SLICE_FIRST = 64  # entries in the first slice; later ones are sized from the bytes seen
SLICE_MAX = 128
SLICE_BYTES = 128 * 1024
#: A rewind that removes at most this many messages (and summaries) is one script.
INLINE_MAX = 64
#: A copy abandoned half-way disappears after this long.
STAGING_TTL_MS = 600_000
#: Starts over when the source is rewound during the copy, at most this many times.
ATTEMPTS = 3
ROLES = ("u", "a", "s", "t")
Slice = TypeVar("Slice", MessagesCopied, SummariesCopied, RecordsCopied)


class _Restart(Exception):
    """The source was rewound (or the copy expired) while copying: start over."""


def _slice(
    reply: MessagesCopied | SummariesCopied | RecordsCopied | Restart, shape: type[Slice]
) -> Slice:
    """A copy.lua slice's reply, as the shape its `what` answers; Restart starts over."""
    if not isinstance(reply, shape):
        if isinstance(reply, Restart):
            raise _Restart()
        raise ReplyMismatch(f"copy.lua answered {type(reply).__name__} to a {shape.__name__} slice")
    return reply


@dataclass
class Copied:
    """What the copied part holds, for the counters of the session it becomes."""

    last: int = 0
    first_ts: str = ""
    last_ts: str = ""
    roles: dict[str, list[int]] = field(default_factory=lambda: {r: [0, 0] for r in ROLES})
    summaries: int = 0
    summary: tuple[int, str, str] | None = None  # (seq, covers_through, tokens) of the newest

    def counters(self, fork: bool) -> Pairs:
        """The session-hash counters (mc, n*, k*, tk, fm, lm, sn, sy/sw/sk; a fork's sq).

        A rewound session keeps its sq (summaries written): summary ids, like message
        ids, are never given twice within one session."""
        count = sum(n for n, _ in self.roles.values())
        out: list[tuple[str, int | str]] = [
            ("mc", count),
            ("sn", self.summaries),
            ("tk", sum(k for _, k in self.roles.values())),
        ]
        for role, (n, k) in self.roles.items():
            out += [(f"n{role}", n), (f"k{role}", k)]
        if self.first_ts:
            out += [("fm", self.first_ts), ("lm", self.last_ts)]
        if self.summary is not None:
            seq, covers, tokens = self.summary
            out += [("sy", seq), ("sw", covers), ("sk", tokens)]
            out += [("sq", seq)] if fork else []
        return tuple((name, str(value)) for name, value in out)


async def _copy(
    store: StoreBase, user_id: str, src: str, dst: str, through: int, gen: str
) -> Copied:
    """Copy src's messages through `through`, and the summaries within them, to dst."""
    copied = Copied()
    after, count, done = 0, SLICE_FIRST, through == 0
    while not done:
        args = CopyArgs(
            src=src,
            dst=dst,
            what="m",
            through=through,
            after=after,
            count=count,
            generation=gen,
            ttl_ms=STAGING_TTL_MS,
        )
        step = _slice(await store._write(store.scripts.copy, user_id, args), MessagesCopied)
        if step.last > after:
            copied.first_ts = copied.first_ts or step.first_ts
            copied.last_ts = step.last_ts
        for role in step.roles:
            copied.roles[role.role][0] += role.messages
            copied.roles[role.role][1] += role.tokens
        count = _next_count(count, step.last - after, step.bytes)
        after, done = step.last, step.done
    await _copy_summaries(store, user_id, src, dst, through, gen, copied)
    return copied


async def _copy_summaries(
    store: StoreBase,
    user_id: str,
    src: str,
    dst: str,
    through: int,
    gen: str,
    copied: Copied,
    after: int = 0,
) -> None:
    """Copy src's summaries after seq `after` that cover at most `through` to dst."""
    count, done = SLICE_FIRST, False
    while not done:
        args = CopyArgs(
            src=src,
            dst=dst,
            what="y",
            through=through,
            after=after,
            count=count,
            generation=gen,
            ttl_ms=STAGING_TTL_MS,
        )
        step = _slice(await store._write(store.scripts.copy, user_id, args), SummariesCopied)
        if step.copied:
            copied.summaries += step.copied
            copied.summary = (step.last, step.covers_through, step.tokens)
        count = _next_count(count, step.copied, step.bytes)
        after, done = step.last, step.done


async def _copy_records(
    store: StoreBase, user_id: str, src: str, dst: str, through: int, gen: str
) -> None:
    """A rewind's copy of the append idempotency records of the messages it keeps
    (the others go with their messages): by seq ('i'), then an earlier release's by
    time ('l')."""
    for what in ("i", "l"):
        after, count, done = 0, SLICE_FIRST, False
        while not done:
            args = CopyArgs(
                src=src,
                dst=dst,
                what=what,
                through=through,
                after=after,
                count=count,
                generation=gen,
                ttl_ms=STAGING_TTL_MS,
            )
            step = _slice(await store._write(store.scripts.copy, user_id, args), RecordsCopied)
            count = _next_count(count, step.read, step.bytes)
            after, done = step.last, step.done


async def _drop(store: StoreBase, user_id: str, staging: str) -> None:
    """Remove an abandoned copy now rather than at its expiry (best effort)."""
    keys = store.keys.staging(user_id, staging)
    try:
        await asyncio.shield(store.client.unlink(*keys))
    except Exception:  # it expires anyway (STAGING_TTL_MS)
        return


def _tagged(session_id: str, user_id: str, fields: Fields) -> Tagged:
    body = session_from_fields(session_id, user_id, fields)
    return Tagged(body, session_etag(fields), last_seq(fields))


class BranchOps(StoreBase):
    async def fork(
        self,
        user_id: str,
        source_id: str,
        through: int | None,
        title: str | None = None,
        idempotency_key: str | None = None,
    ) -> Tagged:
        """A new session of the same user with a copy of the source through `through`
        (default: its last message), titled `title` if given. Complete when it returns.

        With an idempotency key, a retry of the same fork answers the first one's copy.
        """
        fingerprint = ""
        if idempotency_key:
            fingerprint = digest(dump_json(["fork", source_id, through, title]))
        key = digest(idempotency_key) if idempotency_key else ""
        folded = search_fold(title) if title else ""
        for _ in range(ATTEMPTS):
            begin = await self._write(
                self.scripts.fork_begin,
                user_id,
                ForkBeginArgs(
                    src=source_id,
                    through=through,
                    idem=key,
                    fingerprint=fingerprint,
                    max_sessions=self.limits.max_sessions_per_user,
                ),
            )
            if isinstance(begin, ForkReplay):
                return _tagged(begin.session_id, user_id, begin.fields)
            upto, gen, new_id = begin.through, begin.generation, new_session_id()
            try:
                copied = await _copy(self, user_id, source_id, new_id, upto, gen)
            except _Restart:
                continue
            except BaseException:
                await _drop(self, user_id, new_id)
                raise
            # Not dropped if this fails: its reply may be lost after it published.
            reply = await self._write(
                self.scripts.fork,
                user_id,
                ForkArgs(
                    src=source_id,
                    dst=new_id,
                    through=upto,
                    generation=gen,
                    idem=key,
                    fingerprint=fingerprint,
                    idem_ttl_ms=self.limits.idempotency_ttl_ms,
                    max_sessions=self.limits.max_sessions_per_user,
                    title_given=bool(title),
                    title=title or "",
                    title_folded=folded,
                    counters=copied.counters(fork=True),
                ),
            )
            if isinstance(reply, Restart):  # the copy was dropped by the script
                continue
            if not isinstance(reply, ForkReplay):  # a replay pruned nothing
                count_expired(reply.pruned)
            return _tagged(reply.session_id, user_id, reply.fields)
        raise errors.SessionRewound()

    async def rewind(
        self, user_id: str, session_id: str, to: int, if_match: str
    ) -> tuple[int, str]:
        """(messages removed, the messages ETag after)."""
        for _ in range(ATTEMPTS):
            args = RewindArgs(sid=session_id, to=to, if_match=if_match, max_inline=INLINE_MAX)
            begun = await self._write(self.scripts.rewind, user_id, args)
            if not isinstance(begun, RewindStaged):  # a short tail: rewound at once
                return begun.removed, begun.etag
            gen, staging = begun.generation, new_session_id()
            try:
                copied = await _copy(self, user_id, session_id, staging, to, gen)
                await _copy_records(self, user_id, session_id, staging, to, gen)
                counters = copied.counters(fork=False)
                swap = RewindSwapArgs(
                    sid=session_id,
                    staging=staging,
                    if_match=if_match,
                    generation=gen,
                    to=to,
                    counters=counters,
                )
                swapped = await self._write(self.scripts.rewind_swap, user_id, swap)
                while isinstance(swapped, SwapBehind):
                    # More summaries were written during the copy than the swap
                    # carries over in one script: copy them in slices, swap again.
                    await _copy_summaries(
                        self, user_id, session_id, staging, to, gen, Copied(), swapped.after
                    )
                    swapped = await self._write(self.scripts.rewind_swap, user_id, swap)
                if isinstance(swapped, Restart):
                    raise _Restart()
            except _Restart:
                continue
            except BaseException:
                # Harmless after a swap whose reply was lost: the staging keys are gone.
                await _drop(self, user_id, staging)
                raise
            return swapped.removed, swapped.etag
        raise errors.SessionRewound()


def _next_count(count: int, entries: int, nbytes: int) -> int:
    """The next slice's size: about SLICE_BYTES, within [1, SLICE_MAX] entries."""
    if entries <= 0 or nbytes <= 0:
        return min(SLICE_MAX, count * 2)
    per_entry = nbytes / entries
    return max(1, min(SLICE_MAX, int(SLICE_BYTES / per_entry)))
