"""What a scenario gets: the running service, shared seeded data, and measuring helpers."""

from __future__ import annotations

from typing import Any

from bench.harness import HOST, Bench
from bench.loadgen import RequestFactory, Result, run_load
from bench.openloop import run_open_loop
from bench.rediscost import Cost, cost_between, snapshot
from bench.report import Row
from bench.seed import seed_messages, seed_sessions
from session_service.store.sessions import SessionStore

SESSIONS = "/api/v1/sessions"


class Ctx:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.port = 0  # the service's, once it runs
        self.pool: list[str] = []  # sessions of user "bench-g" (get, mixed)
        # Closed-loop results by key ("get", "append", "head", ...): the open loop takes
        # its maximum from them and the bar compares them.
        self.results: dict[str, Result] = {}
        self.costs: dict[str, Cost] = {}  # Redis cost per request, by operation
        self.raw_costs: dict[str, Cost] = {}  # the same for the raw command, by operation
        self._cache: dict[str, Any] = {}

    @property
    def store(self) -> SessionStore:
        assert self.bench.store is not None
        return self.bench.store

    @property
    def quick(self) -> bool:
        return self.bench.quick

    async def load(
        self, name: str, factory: RequestFactory, *, cost: str | None = None, **kw: Any
    ) -> Result:
        """A closed-loop run against the service; with `cost`, also its Redis cost."""
        kw.setdefault("connections", self.bench.connections)
        kw.setdefault("duration", self.bench.duration)
        before = await snapshot(self.store.client) if cost else None
        result = await self.bench.with_cpu(run_load(name, HOST, self.port, factory, **kw))
        if cost and before is not None:
            after = await snapshot(self.store.client)
            sent = result.requests + result.warm_requests
            self.costs[cost] = cost_between(before, after, sent)
        return result

    async def open_loop(self, name: str, factory: RequestFactory, rate: float, **kw: Any) -> Result:
        kw.setdefault("connections", self.bench.connections)
        kw.setdefault("duration", self.bench.duration)
        return await self.bench.with_cpu(
            run_open_loop(name, HOST, self.port, factory, rate=rate, **kw)
        )

    def row(self, result: Result, check: str = "", failed: bool = False) -> Row:
        return Row.from_result(result, self.bench.ceiling_b_rps, check, failed)

    async def user_with_sessions(self, user: str, count: int, texts: bool = True) -> list[str]:
        """A user with `count` sessions, seeded once per run and shared by scenarios."""
        key = f"user:{user}:{count}"
        if key not in self._cache:
            self._cache[key] = await seed_sessions(self.store, user, count, texts=texts)
        ids: list[str] = self._cache[key]
        return ids

    async def conversation(self, count: int) -> tuple[str, str]:
        """(user, session id) of a conversation of `count` 256-byte messages, seeded once."""
        key = f"conversation:{count}"
        if key not in self._cache:
            user = f"bench-conv-{count}"
            (sid,) = await seed_sessions(self.store, user, 1)
            await seed_messages(self.store, user, sid, count)
            self._cache[key] = (user, sid)
        pair: tuple[str, str] = self._cache[key]
        return pair

    @property
    def largest_messages(self) -> int:
        """The documented largest conversation (100,000), smaller in a --quick run."""
        return 5_000 if self.quick else 100_000

    @property
    def largest_sessions(self) -> int:
        """The documented largest user (50,000 sessions), smaller in a --quick run."""
        return 2_000 if self.quick else 50_000
