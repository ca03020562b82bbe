"""The generator and the recorder: seeded clients over several service instances.

Each client draws its operations from its own `random.Random(seed, client)`, so a seed
fixes every client's program; the operations' targets are drawn from what the clients
have learnt so far (sessions created, message ids acknowledged), so the interleaving,
which the scheduler decides, can change a target. A few users and a few sessions each,
so operations collide.

Instances are real apps (`create_app`) on one Redis, each with its own connection pool
(through its own fault proxy on standalone). Killing an instance cancels every request
it is serving, at whatever `await` it has reached, as a crash would, then starts a fresh
app in its place.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from session_service.config import Settings
from tests.conftest import running_app
from tests.helpers import API
from tests.model.history import Op

ADMIN = {"X-User-ID": "model-admin", "X-User-Roles": "admin"}
STATUSES = ("active", "in_progress", "completed", "abandoned")
ROLES = ("user", "assistant", "system")
#: A long timeout: these sessions must not expire during a run.
LONG_TIMEOUT_MINUTES = 60
NO_MESSAGE = "msg_0000000000"


def msg_seq(message_id: str) -> int:
    return int(message_id.split("_", 1)[1])


#: Operations sent together by `op_clash` (each names a `clash_*` method).
CLASHES = (
    ("rewind", "summary"),
    ("rewind", "summary", "summary"),
    ("rewind", "summary", "summary", "summary"),
    ("rewind", "summary", "batch"),
    ("rewind", "summary", "summary", "append"),
    ("rewind", "append"),
    ("rewind", "fork"),
    ("delete_all", "create", "create"),
    ("create", "delete_all", "create", "create"),
    ("delete_all", "create", "create", "create"),
    ("delete_all", "fork"),
    ("erase", "fork"),
    ("erase", "create", "append"),
    ("erase", "delete_all"),
    ("delete", "append", "summary"),
    ("walk", "heartbeat", "create"),
    ("summary", "append"),
    ("fork", "append"),
    ("rewind", "batch"),
    ("batch", "append", "batch"),
    ("erase", "batch"),
    ("batch", "fork"),
    ("delete", "batch"),
    ("feed", "batch", "append"),
    ("rewind", "feed", "batch"),
    ("feed", "delete"),
)
#: Messages a batch carries in these runs (the service accepts 1-64).
BATCH_SIZES = (1, 6)
#: How often an acknowledged keyed append or batch is sent again (`ModelClient.repeat`).
REPEAT = 0.15
#: How long a feed poll after the first may wait for a change (`Prefer: wait=N`).
FEED_WAIT_SECONDS = 1


class Instance:
    """One service instance; `kill()` crashes it mid-request and starts a new one."""

    def __init__(self, index: int, settings: Settings) -> None:
        self.index = index
        self.settings = settings
        self.client: httpx.AsyncClient | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._inflight: set[asyncio.Task[httpx.Response]] = set()
        self.kills = 0
        self.on_start: Callable[[Any], None] = lambda app: None

    async def start(self) -> None:
        stack = contextlib.AsyncExitStack()
        client = await stack.enter_async_context(running_app(self.settings))
        self.on_start(client.app)  # type: ignore[attr-defined]
        self.client, self._stack = client, stack

    async def stop(self) -> None:
        stack, self._stack, self.client = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def kill(self) -> None:
        """Cut every in-flight request where it stands, then start a fresh app."""
        client, self.client = self.client, None
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        self.kills += 1
        stack, self._stack = self._stack, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()
        del client
        await self.start()

    async def request(
        self, method: str, path: str, **kwargs: Any
    ) -> tuple[httpx.Response | None, str | None]:
        """(response, None) or (None, why it has no answer)."""
        client = self.client
        if client is None:
            return None, "instance down"
        task = asyncio.ensure_future(client.request(method, path, **kwargs))
        self._inflight.add(task)
        try:
            await asyncio.wait({task})
        finally:
            self._inflight.discard(task)
        if task.cancelled():
            return None, "instance killed"
        error = task.exception()
        if error is not None:
            return None, f"{type(error).__name__}: {error}"[:200]
        return task.result(), None


@dataclass
class Known:
    """What the clients have learnt about one session."""

    sid: str
    user: str
    short: bool
    messages: list[str] = field(default_factory=list)  # acknowledged message ids
    etag: str | None = None
    messages_etag: str | None = None


@dataclass
class Plan:
    """The shape of one run (everything but the seed)."""

    clients: int = 6
    ops_per_client: int = 60
    users: tuple[str, ...] = ("alice", "bob")
    client_ids: tuple[str, ...] = ("tab-1", "tab-2")
    weights: dict[str, int] = field(
        default_factory=lambda: {
            "create": 6, "get": 4, "update": 2, "status": 2, "archive": 2, "restore": 2,
            "append": 10, "batch": 5, "grow": 3, "summary": 12, "fork": 5, "rewind": 12,
            "delete": 2, "delete_all": 1, "erase": 1, "heartbeat": 3, "link": 2, "unlink": 1,
            "messages": 4, "summaries": 3, "search_walk": 3, "list_walk": 2, "stats": 1,
            "statistics": 1, "feed": 3, "clash": 20,
        }
    )  # fmt: skip


class World:
    """The recorder and the clients' shared knowledge."""

    def __init__(self, seed: int, plan: Plan, instances: list[Instance]) -> None:
        self.seed = seed
        self.plan = plan
        self.instances = instances
        self.history: list[Op] = []
        self.known: dict[str, list[Known]] = {u: [] for u in plan.users}
        self.by_sid: dict[str, Known] = {}
        self.origin = time.monotonic()
        self._walks = 0

    def remember(self, user: str, sid: str, short: bool) -> Known:
        known = self.by_sid.get(sid)
        if known is None:
            known = self.by_sid[sid] = Known(sid, user, short)
            self.known[user].append(known)
        return known

    def forget(self, user: str, sid: str | None = None) -> None:
        """Stop choosing a session (or every session of the user) that is gone."""
        gone = [k for k in self.known[user] if sid is None or k.sid == sid]
        for known in gone:
            self.known[user].remove(known)
            self.by_sid.pop(known.sid, None)

    def next_walk(self) -> int:
        self._walks += 1
        return self._walks

    async def call(
        self,
        client: int,
        instance: Instance,
        kind: str,
        user: str,
        sid: str | None,
        method: str,
        path: str,
        args: dict[str, Any],
        headers: dict[str, str],
        json: Any = None,
        params: dict[str, Any] | None = None,
        walk: int | None = None,
    ) -> Op:
        op = Op(len(self.history), client, instance.index, kind, user, sid, args,
                time.monotonic(), walk=walk)  # fmt: skip
        self.history.append(op)
        kwargs: dict[str, Any] = {"headers": headers}
        if json is not None:
            kwargs["json"] = json
        if params is not None:
            kwargs["params"] = params
        response, error = await instance.request(method, path, **kwargs)
        op.end = time.monotonic()
        if response is None:
            op.error = error
            return op
        op.status = response.status_code
        op.etag = response.headers.get("etag")
        if response.content:
            try:
                op.body = response.json()
            except ValueError:
                op.body = response.text[:200]
        return op


class ModelClient:
    """One client: a seeded program of operations against random instances."""

    def __init__(self, world: World, index: int) -> None:
        self.world = world
        self.index = index
        self.rng = random.Random(f"{world.seed}:{index}")
        self.user = world.plan.users[index % len(world.plan.users)]
        self.counter = 0
        kinds = list(world.plan.weights)
        self._kinds = kinds
        self._weights = [world.plan.weights[k] for k in kinds]

    def token(self) -> str:
        self.counter += 1
        return f"s{self.world.seed}c{self.index}n{self.counter}"

    def instance(self) -> Instance:
        return self.rng.choice(self.world.instances)

    def other(self, instance: Instance) -> Instance:
        others = [i for i in self.world.instances if i is not instance]
        return self.rng.choice(others) if others else instance

    def headers(self, **extra: str) -> dict[str, str]:
        return {"X-User-ID": self.user, **extra}

    def pick(self) -> Known | None:
        known = self.world.known[self.user]
        if not known:
            return None
        # Mostly the newest few, so operations meet on the same sessions.
        return known[-1 - min(int(self.rng.expovariate(1.0)), len(known) - 1)]

    async def run(self, ops: int) -> None:
        for _ in range(ops):
            kind = self.rng.choices(self._kinds, self._weights)[0]
            await getattr(self, f"op_{kind}")()

    async def call(self, kind: str, sid: str | None, method: str, path: str,
                   args: dict[str, Any], instance: Instance | None = None,
                   headers: dict[str, str] | None = None, **kwargs: Any) -> Op:  # fmt: skip
        op = await self.world.call(
            self.index, instance or self.instance(), kind, self.user, sid, method, path, args,
            headers if headers is not None else self.headers(), **kwargs,
        )  # fmt: skip
        if sid and (op.code() == "session_not_found" or (kind == "delete" and op.ok)):
            self.world.forget(self.user, sid)
        elif kind in ("delete_all", "erase") and op.ok:
            self.world.forget(self.user)
        return op

    async def keyed(
        self, kind: str, sid: str | None, method: str, path: str, body: Any,
        extra_headers: dict[str, str],
    ) -> Op:  # fmt: skip
        """A write with an Idempotency-Key: an answerless attempt is retried once, with the
        same key and body, on another instance (as a client behind a load balancer would)."""
        instance = self.instance()
        headers = self.headers(**extra_headers)
        args = {"body": body, "headers": extra_headers}
        op = await self.call(kind, sid, method, path, args, instance, headers, json=body)
        if op.outcome == "info" and "Idempotency-Key" in extra_headers:
            retry = await self.call(
                kind, sid, method, path, {**args, "retry_of": op.index},
                self.other(instance), headers, json=body,
            )  # fmt: skip
            return retry
        return op

    async def repeat(self, op: Op, path: str, known: Known) -> None:
        """Send an acknowledged keyed append or batch once more, with the same key, body
        and headers, through the other instance: a client whose own timeout fired just
        as the answer left. The replay must answer what the first answer did and store
        nothing, even though the If-Match it carries no longer holds."""
        headers = self.headers(**op.args["headers"])
        again = await self.call(
            op.kind, op.sid, "POST", path,
            {"body": op.args["body"], "headers": op.args["headers"], "replay_of": op.index},
            self.other(self.world.instances[op.instance]), headers, json=op.args["body"],
        )  # fmt: skip
        if again.ok:  # stored anew when a rewind had removed it all: learn the new ids
            body = again.body
            ids = [m["message_id"] for m in body.get("messages", [body.get("message")])]
            known.messages += [m for m in ids if m not in known.messages]

    def learn_session(self, op: Op, short: bool) -> None:
        if op.ok and isinstance(op.body, dict) and "session_id" in op.body:
            known = self.world.remember(self.user, op.body["session_id"], short)
            known.etag = op.etag or known.etag

    # ---- operations ------------------------------------------------------------------

    async def op_create(self, short: bool | None = None) -> None:
        short = self.rng.random() < 0.3 if short is None else short
        body: dict[str, Any] = {"title": f"title {self.token()}"}
        if not short:
            body["timeout_minutes"] = LONG_TIMEOUT_MINUTES
        extra: dict[str, str] = {}
        if self.rng.random() < 0.3:
            body["client_id"] = self.rng.choice(self.world.plan.client_ids)
        if self.rng.random() < 0.5:
            extra["Idempotency-Key"] = f"create-{self.token()}"
        op = await self.keyed("create", None, "POST", API, body, extra)
        self.learn_session(op, short)

    async def op_get(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        op = await self.call("get", known.sid, "GET", f"{API}/{known.sid}", {})
        if op.ok:
            known.etag = op.etag

    async def op_update(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        body: dict[str, Any] = {"title": f"title {self.token()}"}
        if self.rng.random() < 0.3:
            body["metadata"] = {"k": self.token()}
        extra = {"If-Match": known.etag} if known.etag and self.rng.random() < 0.4 else {}
        op = await self.call(
            "update", known.sid, "PATCH", f"{API}/{known.sid}", {"body": body, "headers": extra},
            headers=self.headers(**extra), json=body,
        )  # fmt: skip
        if op.ok:
            known.etag = op.etag

    async def op_status(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        body = {"status": self.rng.choice(STATUSES)}
        op = await self.call("status", known.sid, "PATCH", f"{API}/{known.sid}", {"body": body},
                             json=body)  # fmt: skip
        if op.ok:
            known.etag = op.etag

    async def op_archive(self) -> None:
        await self._lifecycle("archive")

    async def op_restore(self) -> None:
        await self._lifecycle("restore")

    async def _lifecycle(self, kind: str) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        extra = {"If-Match": known.etag} if known.etag and self.rng.random() < 0.3 else {}
        op = await self.call(kind, known.sid, "POST", f"{API}/{known.sid}/{kind}",
                             {"headers": extra}, headers=self.headers(**extra))  # fmt: skip
        if op.ok:
            known.etag = op.etag

    async def op_append(self, known: Known | None = None, plain: bool = False) -> Op | None:
        known = known or self.pick()
        if known is None:
            await self.op_create()
            return None
        body: dict[str, Any] = {"role": self.rng.choice(ROLES), "content": self.token()}
        if self.rng.random() < 0.3:
            body["token_count"] = self.rng.randint(0, 50)
        extra: dict[str, str] = {}
        if not plain and self.rng.random() < 0.5:
            extra["Idempotency-Key"] = f"append-{self.token()}"
        if not plain and known.messages_etag and self.rng.random() < 0.2:
            extra["If-Match"] = known.messages_etag
        path = f"{API}/{known.sid}/messages"
        op = await self.keyed("append", known.sid, "POST", path, body, extra)
        if op.ok:
            known.messages.append(op.body["message"]["message_id"])
            known.messages_etag = op.etag
            if "Idempotency-Key" in extra and self.rng.random() < REPEAT:
                await self.repeat(op, path, known)
        return op

    async def op_batch(self, known: Known | None = None) -> Op | None:
        """A batch append of 1-6 messages (sometimes an assistant's tool call and its
        result), with or without Idempotency-Key and If-Match, retried like `append`."""
        known = known or self.pick()
        if known is None:
            await self.op_create()
            return None
        messages: list[dict[str, Any]] = []
        for _ in range(self.rng.randint(*BATCH_SIZES)):
            message: dict[str, Any] = {"role": self.rng.choice(ROLES), "content": self.token()}
            if self.rng.random() < 0.3:
                message["token_count"] = self.rng.randint(0, 50)
            messages.append(message)
        if len(messages) >= 2 and self.rng.random() < 0.3:
            # A tool call answered in the same batch: the tool-call index moves with it.
            at = self.rng.randrange(len(messages) - 1)
            call = f"call-{self.token()}"
            messages[at] = {
                "role": "assistant",
                "content": messages[at]["content"],
                "tool_calls": [{"id": call, "name": "probe", "arguments": {}}],
            }
            messages[at + 1] = {"role": "tool", "content": messages[at + 1]["content"],
                                "tool_call_id": call}  # fmt: skip
        body = {"messages": messages}
        extra: dict[str, str] = {}
        if self.rng.random() < 0.5:
            extra["Idempotency-Key"] = f"batch-{self.token()}"
        if known.messages_etag and self.rng.random() < 0.2:
            extra["If-Match"] = known.messages_etag
        path = f"{API}/{known.sid}/messages/batch"
        op = await self.keyed("batch", known.sid, "POST", path, body, extra)
        if op.ok:
            known.messages.extend(m["message_id"] for m in op.body["messages"])
            known.messages_etag = op.etag
            if "Idempotency-Key" in extra and self.rng.random() < REPEAT:
                await self.repeat(op, path, known)
        return op

    async def op_grow(self) -> None:
        """A burst of appends to one session, so rewinds have something long to cut."""
        known = self.pick()
        if known is None:
            return await self.op_create()
        for _ in range(self.rng.randint(4, 10)):
            op = await self.op_append(known, plain=self.rng.random() < 0.7)
            if op is not None and op.outcome == "fail":
                return

    async def op_summary(self) -> None:
        known = self.pick()
        if known is None or not known.messages:
            await self.op_append(known)
            return
        covers = self.rng.choice(known.messages[-8:])
        body = {"content": f"summary {self.token()}", "covers_through": covers}
        extra: dict[str, str] = {}
        if self.rng.random() < 0.4:
            extra["Idempotency-Key"] = f"summary-{self.token()}"
        op = await self.keyed(
            "summary", known.sid, "POST", f"{API}/{known.sid}/summaries", body, extra
        )
        if op.ok:
            known.messages_etag = op.etag

    async def op_fork(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        body: dict[str, Any] = {}
        if known.messages and self.rng.random() < 0.7:
            body["through_message_id"] = self.rng.choice(known.messages)
        extra: dict[str, str] = {}
        if self.rng.random() < 0.4:
            extra["Idempotency-Key"] = f"fork-{self.token()}"
        op = await self.keyed("fork", known.sid, "POST", f"{API}/{known.sid}/fork", body, extra)
        self.learn_session(op, known.short)
        if op.ok:
            through = body.get("through_message_id")
            copied = [
                m for m in known.messages if through is None or msg_seq(m) <= msg_seq(through)
            ]
            self.world.by_sid[op.body["session_id"]].messages = copied

    async def op_rewind(self) -> None:
        known = self.pick()
        if known is None or not known.messages:
            return await self.op_grow()
        if self.rng.random() < 0.15:
            to = NO_MESSAGE
        else:
            # Mostly far back (a staged rewind), sometimes one or two messages.
            back = self.rng.choice([1, 2, 5, 10, 20])
            to = known.messages[max(0, len(known.messages) - 1 - back)]
        body = {"to_message_id": to}
        extra = {"If-Match": known.messages_etag} if (
            known.messages_etag and self.rng.random() < 0.2) else {}  # fmt: skip
        op = await self.call("rewind", known.sid, "POST", f"{API}/{known.sid}/rewind",
                             {"body": body, "headers": extra}, headers=self.headers(**extra),
                             json=body)  # fmt: skip
        if op.ok:
            known.messages = [m for m in known.messages if to != NO_MESSAGE and
                              msg_seq(m) <= msg_seq(to)]  # fmt: skip
            known.messages_etag = op.etag

    async def op_delete(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        await self.call("delete", known.sid, "DELETE", f"{API}/{known.sid}", {})

    async def op_delete_all(self) -> None:
        await self.call("delete_all", None, "DELETE", API, {})

    async def op_erase(self) -> None:
        await self.call("erase", None, "DELETE", f"/api/v1/users/{self.user}/sessions", {},
                        headers=dict(ADMIN))  # fmt: skip

    async def op_heartbeat(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        await self.call("heartbeat", known.sid, "POST", f"{API}/{known.sid}/heartbeat", {})

    async def op_link(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        body = {"case_id": f"case-{self.rng.randint(1, 3)}"}
        await self.call("link", known.sid, "POST", f"{API}/{known.sid}/cases", {"body": body},
                        json=body)  # fmt: skip

    async def op_unlink(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        case = f"case-{self.rng.randint(1, 3)}"
        await self.call("unlink", known.sid, "DELETE", f"{API}/{known.sid}/cases/{case}",
                        {"case_id": case})  # fmt: skip

    async def op_summaries(self, known: Known | None = None) -> None:
        """One whole read of the summaries (a page of 100 holds them all here)."""
        known = known or self.pick()
        if known is None:
            return await self.op_create()
        params = {"limit": 100}
        await self.call("summaries", known.sid, "GET", f"{API}/{known.sid}/summaries",
                        params, params=params)  # fmt: skip

    async def op_messages(self, known: Known | None = None) -> None:
        """One whole read of the messages, if it fits a page (else the first page)."""
        known = known or self.pick()
        if known is None:
            return await self.op_create()
        params = {"order": "asc", "limit": 200}
        op = await self.call("messages", known.sid, "GET", f"{API}/{known.sid}/messages",
                             params, params=params)  # fmt: skip
        if op.ok:
            known.messages_etag = op.etag

    async def op_feed(self, known: Known | None = None) -> None:
        """A client that follows a session's change feed in the header-only form: 2-4
        polls, each resuming from the `last_event_id` and `ETag` of the one before, the
        later ones waiting up to FEED_WAIT_SECONDS for a change. The first starts from
        now, from the first message, or from a message the client knows (then sometimes
        with the session ETag the client last saw, as `If-None-Match`)."""
        known = known or self.pick()
        if known is None:
            return await self.op_create()
        feed = self.world.next_walk()
        cursor: str | None = None
        draw = self.rng.random()
        if draw < 0.3:
            cursor = NO_MESSAGE
        elif draw < 0.5 and known.messages:
            cursor = self.rng.choice(known.messages)
        # A state the client saw earlier: a poll that resumes with it opens with the
        # current state when it changed since.
        etag = known.etag if cursor is not None and self.rng.random() < 0.5 else None
        for poll in range(self.rng.randint(2, 4)):
            extra = {"Accept": "application/json"}
            if cursor is not None:
                extra["Last-Event-ID"] = cursor
            if etag is not None:
                extra["If-None-Match"] = etag
            if poll:
                extra["Prefer"] = f"wait={FEED_WAIT_SECONDS}"
            op = await self.call("feed", known.sid, "GET", f"{API}/{known.sid}/events",
                                 {"headers": extra}, headers=self.headers(**extra),
                                 walk=feed)  # fmt: skip
            if not op.ok:
                return
            cursor, etag = op.body["last_event_id"], op.etag or etag
            if any(e["event"] == "deleted" for e in op.body["events"]):
                return

    async def op_stats(self) -> None:
        known = self.pick()
        if known is None:
            return await self.op_create()
        await self.call("stats", known.sid, "GET", f"{API}/{known.sid}/stats", {})

    async def op_statistics(self) -> None:
        await self.call("statistics", None, "GET", f"{API}/statistics", {})

    async def op_search_walk(self) -> None:
        walk = self.world.next_walk()
        body: dict[str, Any] = {"include_archived": True, "limit": self.rng.choice([1, 2, 3])}
        for _ in range(100):
            op = await self.call("search", None, "POST", f"{API}/search", {"body": dict(body)},
                                 json=dict(body), walk=walk)  # fmt: skip
            if not op.ok or not op.body.get("next_cursor"):
                return
            body["cursor"] = op.body["next_cursor"]

    async def op_clash(self) -> None:
        """Two or three operations sent at once on one session (or one user) through
        different instances: the pairs whose meeting the review found defects in."""
        scenario = self.rng.choice(CLASHES)
        known = self.pick()
        if known is None or len(known.messages) < 4:
            grown = [k for k in self.world.known[self.user] if len(k.messages) >= 4]
            if not grown:
                return await self.op_grow()
            known = grown[-1]
        # Where a rewind in the clash cuts: the other operations use what it keeps.
        keep = self.rng.randint(1, max(1, len(known.messages) - 4))
        if self.rng.random() < 0.1:
            keep = 0
        # The later parts start a few milliseconds after the first, so they meet it
        # mid-way rather than queue before it (a shape, not an assumption on speed). A
        # staged rewind is short (a few milliseconds here), so what meets it starts
        # within its first ones.
        spread = 0.008 if scenario[0] == "rewind" else 0.02
        delays = [0.0] + [self.rng.uniform(0, spread) for _ in scenario[1:]]

        # What the parts choose from is fixed now: other clients change `known` meanwhile.
        snapshot = Known(known.sid, known.user, known.short, list(known.messages))

        async def part(name: str, delay: float) -> None:
            await asyncio.sleep(delay)
            await getattr(self, f"clash_{name}")(snapshot, keep)

        await asyncio.gather(*(part(n, d) for n, d in zip(scenario, delays, strict=True)))
        # Read what the clash left, while it is still there to read.
        await self.op_messages(known)
        await self.op_summaries(known)

    async def clash_rewind(self, known: Known, keep: int) -> None:
        to = known.messages[keep - 1] if keep else NO_MESSAGE
        body = {"to_message_id": to}
        op = await self.call("rewind", known.sid, "POST", f"{API}/{known.sid}/rewind",
                             {"body": body, "headers": {}}, json=body)  # fmt: skip
        shared = self.world.by_sid.get(known.sid)
        if op.ok and shared is not None:
            cut = 0 if to == NO_MESSAGE else msg_seq(to)
            shared.messages = [m for m in shared.messages if msg_seq(m) <= cut]

    async def clash_summary(self, known: Known, keep: int) -> None:
        if not known.messages:
            return
        # Mostly the last message a rewind in the clash keeps: a summary may not cover
        # less than the newest one does (409 summary_out_of_order), so this one is the
        # likeliest to be written while the rewind runs.
        kept = known.messages[: max(1, keep)]
        covers = kept[-1] if self.rng.random() < 0.7 else self.rng.choice(kept)
        body = {"content": f"summary {self.token()}", "covers_through": covers}
        await self.call("summary", known.sid, "POST", f"{API}/{known.sid}/summaries",
                        {"body": body, "headers": {}}, json=body)  # fmt: skip

    async def clash_append(self, known: Known, keep: int) -> None:
        await self.op_append(self.world.by_sid.get(known.sid) or known)

    async def clash_batch(self, known: Known, keep: int) -> None:
        await self.op_batch(self.world.by_sid.get(known.sid) or known)

    async def clash_feed(self, known: Known, keep: int) -> None:
        await self.op_feed(self.world.by_sid.get(known.sid) or known)

    async def clash_fork(self, known: Known, keep: int) -> None:
        body = {"through_message_id": self.rng.choice(known.messages)} if known.messages else {}
        op = await self.call("fork", known.sid, "POST", f"{API}/{known.sid}/fork",
                             {"body": body, "headers": {}}, json=body)  # fmt: skip
        self.learn_session(op, known.short)

    async def clash_create(self, known: Known, keep: int) -> None:
        await self.op_create(short=self.rng.random() < 0.7)

    async def clash_delete(self, known: Known, keep: int) -> None:
        await self.call("delete", known.sid, "DELETE", f"{API}/{known.sid}", {})

    async def clash_delete_all(self, known: Known, keep: int) -> None:
        await self.op_delete_all()

    async def clash_erase(self, known: Known, keep: int) -> None:
        await self.op_erase()

    async def clash_walk(self, known: Known, keep: int) -> None:
        await self.op_search_walk()

    async def clash_heartbeat(self, known: Known, keep: int) -> None:
        await self.call("heartbeat", known.sid, "POST", f"{API}/{known.sid}/heartbeat", {})

    async def op_list_walk(self) -> None:
        walk = self.world.next_walk()
        limit = self.rng.choice([1, 2, 3])
        for page in range(100):
            params = {"include_archived": "true", "limit": limit, "offset": page * limit}
            op = await self.call("list", None, "GET", API, params, params=params, walk=walk)
            if not op.ok or len(op.body.get("sessions", [])) < limit:
                return


async def run_clients(world: World, ops: int) -> None:
    clients = [ModelClient(world, i) for i in range(world.plan.clients)]
    async with asyncio.TaskGroup() as group:  # one client's error stops the others
        for c in clients:
            group.create_task(c.run(ops))
