"""What every part of the store shares: the client, the keys, the limits, the scripts.

Writes are single Lua scripts (atomic, one round trip); reads are single
commands or one non-transactional pipeline. Every method takes the caller's
user id and only ever touches keys under that user's hash tag.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError

from session_service import errors
from session_service.observability.logging import user_ref
from session_service.observability.metrics import SESSIONS, count_replay
from session_service.store import confirmation
from session_service.store.connection.client import RedisClient
from session_service.store.connection.wait import confirm, eval_and_wait
from session_service.store.keys import READ_BARRIER, Keys
from session_service.store.protocol import ScriptArgs
from session_service.store.records import Limits
from session_service.store.reply_decoding import is_refusal, replayed
from session_service.store.retries import again_on_connection_error
from session_service.store.scripts import Script, load_scripts

logger = logging.getLogger("session_service.store")
R = TypeVar("R")


def count_expired(pruned: int) -> None:
    """Every script that prunes reports how many expired sessions it removed."""
    if pruned > 0:
        SESSIONS.labels("expired").inc(pruned)


class StoreBase:
    def __init__(
        self,
        client: RedisClient,
        keys: Keys,
        limits: Limits,
        min_replicas_ack: int = 0,
        replica_ack_timeout_ms: int = 500,
        confirmed_reads: bool = False,
    ) -> None:
        # redis-py's command stubs mix bytes and str; replies are decoded strings here.
        self.client: Any = client
        self.keys = keys
        self.limits = limits
        self.scripts = load_scripts()
        self.min_replicas_ack = min_replicas_ack
        self.replica_ack_timeout_ms = replica_ack_timeout_ms
        self.confirmed_reads = confirmed_reads and min_replicas_ack > 0
        self.is_cluster = isinstance(client, RedisCluster)

    async def _read(self, script: Script, user_id: str, args: ScriptArgs[R]) -> R:
        """Run a script that reads, and at most prunes expired index entries; its reply
        decoded (a refusal raised).

        It never waits for replicas: losing a prune loses nothing, and listing must
        keep working while a replica is down.
        """
        return args.decode(await script(self.client, [self.keys.base(user_id)], args))

    async def _write(
        self,
        script: Script,
        user_id: str,
        args: ScriptArgs[R],
        target_status: str | None = None,
    ) -> R:
        """Run a writing script; with REDIS_MIN_REPLICAS_ACK, WAIT in the same round trip.
        The reply comes decoded; a refusal raises its error (`target_status`: update's).

        WAIT counts only this connection's writes. An idempotent replay writes nothing
        of its own, so every script answers 'replay' through lib.lua's replay(), which
        rewrites the record: a replica that confirms that write holds the original.
        """
        if self.min_replicas_ack == 0:
            raw = await script(self.client, [self.keys.base(user_id)], args)
            reply = args.decode(raw, target_status)
        else:
            reply = await self._write_acked(script, self.keys.base(user_id), args, target_status)
        count_replay(script.name, replayed(reply))
        return reply

    async def _write_acked(
        self, script: Script, base: str, args: ScriptArgs[R], target_status: str | None
    ) -> R:
        # With confirmed reads, a barrier write makes the WAIT cover what the script
        # read as well, refusals included: its answer then needs no confirmation.
        barrier = f"{base}{READ_BARRIER}" if self.confirmed_reads else None
        argv = script.argv(args)
        for _ in range(2):
            raw, acked = await eval_and_wait(
                self.client,
                script.sha,
                base,
                argv,
                replicas=self.min_replicas_ack,
                timeout_ms=self.replica_ack_timeout_ms,
                barrier=barrier,
            )
            if isinstance(raw, NoScriptError):
                # Loading a script twice is harmless, so a dropped connection is retried.
                await again_on_connection_error(lambda: self.client.script_load(script.source))
                continue
            if isinstance(raw, Exception):
                raise raw
            if isinstance(acked, Exception):
                raise acked
            # A refusal wrote nothing, so it needs no replica unless it must confirm a read.
            if (barrier is not None or not is_refusal(raw)) and int(acked) < self.min_replicas_ack:
                raise errors.StorageUnavailable(
                    f"The write reached {acked} of {self.min_replicas_ack} required replicas in "
                    "time; it may not survive a failover. Retrying the same request with the "
                    "same idempotency key stores it once."
                )
            if barrier is not None:
                confirmation.mark_confirmed()
            return args.decode(raw, target_status)  # a refusal raises here
        raise errors.StorageUnavailable()

    async def confirm_reads(self, user_id: str) -> None:
        """Answer only once REDIS_MIN_REPLICAS_ACK replicas hold what the answer shows.

        A barrier (SPUBLISH to the user's shard channel), then WAIT, on one connection
        to the user's node: replication is in order, so a replica that confirms the
        barrier holds everything the node held when the answer was read. 503 when
        too few confirm in time (the answer may show a write that a failover would
        lose, and whose id a later write would then reuse), or when the answer was
        read from another server than the barrier reached (a failover in between).
        """
        acked = await confirm(
            self.client,
            self.keys.read_barrier(user_id),
            self.min_replicas_ack,
            self.replica_ack_timeout_ms,
        )
        ticket = confirmation.current_ticket()
        if isinstance(acked, rx.MovedError):
            await self.client.nodes_manager.move_slot(acked)
            raise errors.StorageUnavailable(
                "The user's data moved to another node while this answer was read."
            )
        if isinstance(acked, Exception):
            raise acked
        if ticket is not None and len(ticket.servers) > 1:
            raise errors.StorageUnavailable(
                "This answer was read from a server that is no longer the master (a "
                "failover); it may show a write the failover lost."
            )
        if int(acked) < self.min_replicas_ack:
            raise errors.StorageUnavailable(
                f"What this answer shows reached {acked} of {self.min_replicas_ack} required "
                "replicas in time (REDIS_CONFIRMED_READS); it may not survive a failover."
            )
        confirmation.mark_confirmed()

    def _record_evictions(self, user_id: str, session_ids: Sequence[str]) -> list[str]:
        """Count and log sessions the limit policy deleted (ids only, the user hashed)."""
        for sid in session_ids:
            SESSIONS.labels("evicted").inc()
            ref = user_ref(user_id)
            logger.info(
                "session %s evicted by SESSION_LIMIT_POLICY=evict_oldest (user %s)",
                sid,
                ref,
                extra={"session_id": sid, "user": ref},
            )
        return list(session_ids)

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        async for key in self.client.scan_iter(match=pattern, count=1000):
            yield key
