"""Sentinel: discovering the master, and a master client that closes what it opened."""

from __future__ import annotations

from redis import exceptions as rx
from redis.asyncio import Redis
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from session_service.store.connection.pool import WaitForRelease


class WaitingSentinelPool(WaitForRelease, SentinelConnectionPool):
    """The master's pool: connections to whichever master the sentinels name."""


class StableSentinel(Sentinel):
    """Sentinel discovery that never reorders the sentinel list.

    redis-py swaps the answering sentinel to the front after an await; concurrent
    discoveries (every request during a failover) then race and can drop a
    sentinel from the list, losing it for discovery and leaking its connections.
    """

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        failures = []
        for sentinel in tuple(self.sentinels):
            try:
                masters = await sentinel.sentinel_masters()
            except (rx.ConnectionError, rx.TimeoutError) as exc:
                # The text, not redis-py's repr (its category only): a TLS failure must
                # reach the start-up check (store/probe.py) to be named there.
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            state = masters.get(service_name) if isinstance(masters, dict) else None
            if state and self.check_master_state(state, service_name):
                return state["ip"], int(state["port"])
        raise MasterNotFoundError(f"No master found for {service_name!r}: {', '.join(failures)}")


class SentinelMaster(Redis):
    """The master's client; closing it also closes the connections to the sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        manager = self.connection_pool.sentinel_manager  # type: ignore[attr-defined]
        await super().aclose(close_connection_pool)
        for sentinel in manager.sentinels:
            await sentinel.aclose()
