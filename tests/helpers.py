"""The helpers tests share, in one place (fixtures stay in `tests/conftest.py`).

Test modules import from here, never from one another; `tests/conftest.py`
re-exports `user` and `create_session` for modules that import them from there.

Requests (through the app client of the `client`/`make_client` fixtures):

- `API`: the sessions collection, ``/api/v1/sessions``.
- `user(user_id, **headers)`: the identity headers the gateway would set.
- `create_session(client, user_id, **body)`: a 201 create, its body.
- `append(client, sid, content, role, user_id, **body)`: one message append, the response.
- `appended(client, sid, user_id, **body)`: an append that must answer 201, its message.
- `get_json(client, path, user_id, params)`: a GET that must answer 200, its body.
- `SESSION_WRITES`: the writes on one session that honour If-Match, as a table.
- `mid(n)`: the id of the n-th message of a session (``msg_0000000001`` ...).
- `epoch(iso)`, `epoch_ms(iso)`: a timestamp the service wrote, as seconds or milliseconds.

Deadlines, on Redis's own clock (the one the scripts read with ``TIME``):

- `redis_now_ms(redis)`: Redis's clock, in milliseconds.
- `wait_past(redis, deadline)`: return once Redis's clock has passed `deadline` (an ISO
  timestamp the service wrote, or epoch milliseconds). The service decides expiry on that
  clock, so no margin is added and no machine's speed is assumed.

Redis keys, only through these (built on `session_service.store.keys`, so a test never
spells a key suffix and follows the layout if it changes):

- `KEYS`: the `Keys` builder of the default ``KEY_PREFIX`` (``fms``).
- `keys_of(user_id, sid)`: a session's keys by name (`SessionKeys`: ``.session``,
  ``.messages``, ``.idempotency``, ``.idempotency_age``, ``.cases``, ``.tool_calls``,
  ``.summaries``, and ``.owned``, every key the session owns).
- `user_keys(user_id)`: a user's keys (`UserKeys`: ``.base``, ``.expiry``, ``.erase``,
  ``.message_counts``, ``.user_counters``, ``.client(client_id)``, ``.status_index(status)``,
  ``.search_snapshot(walk)``, ``.suffix(key)``, ``.kind_of(key)``, ``.session_of(key)``).
- `SESSION_RECORDS`: a SCAN pattern matching every user's session records.
- `split_key(key)`: the owner and the suffix of any user's key; `KEY_SUFFIX`: every shape a
  suffix may have.

Store and metrics:

- `store_of(client)`: the app's `SessionStore`.
- `fill(store, redis, user_id, sid, count)`: `count` appends through the store's own
  append script, pipelined (for the large-data tests).
- `scrape(client)`, `sample(text, name, **labels)`: the ``/metrics`` exposition and one of
  its samples.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from session_service.domain.status import ALL_STATUSES
from session_service.domain.tokens import estimate_tokens
from session_service.store import keys as layout
from session_service.store.keys import Keys
from session_service.store.protocol import AppendArgs
from session_service.store.replies import AppendOk
from session_service.store.sessions import SessionStore

API = "/api/v1/sessions"

KEYS = Keys("fms")

# ---- requests -------------------------------------------------------------------------


def user(user_id: str = "u1", **extra: str) -> dict[str, str]:
    """Headers the gateway would set for `user_id`."""
    return {"X-User-ID": user_id, **extra}


async def create_session(
    client: httpx.AsyncClient, user_id: str = "u1", **body: Any
) -> dict[str, Any]:
    response = await client.post(API, json=body, headers=user(user_id))
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def append(
    client: httpx.AsyncClient,
    sid: str,
    content: str = "hello",
    role: str = "user",
    user_id: str = "u1",
    **body: Any,
) -> httpx.Response:
    """One message append as `user_id`; the response, whatever it is."""
    return await client.post(
        f"{API}/{sid}/messages",
        json={"role": role, "content": content, **body},
        headers=user(user_id),
    )


async def appended(
    client: httpx.AsyncClient, sid: str, user_id: str = "u1", **body: Any
) -> dict[str, Any]:
    """An append of exactly `body` as `user_id` that must answer 201; the stored message."""
    response = await client.post(f"{API}/{sid}/messages", json=body, headers=user(user_id))
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()["message"]
    return message


async def get_json(
    client: httpx.AsyncClient, path: str, user_id: str = "u1", params: Any = None
) -> Any:
    """A GET of `path` (with query `params`) that must answer 200; its body."""
    response = await client.get(path, params=params, headers=user(user_id))
    assert response.status_code == 200, response.text
    return response.json()


#: The writes on one session that honour If-Match: (method, path suffix, body, success).
SESSION_WRITES: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("PATCH", "", {"title": "new"}, 200),
    ("PUT", "", {"description": "new"}, 200),
    ("PATCH", "", {"status": "completed"}, 200),  # a status change
    ("POST", "/cleanup", None, 200),
    ("POST", "/archive", None, 200),
    ("DELETE", "", None, 204),
]


def mid(n: int) -> str:
    """The id of a session's n-th message."""
    return f"msg_{n:010d}"


def epoch(iso: str) -> float:
    """A timestamp the service wrote (``...Z``), in seconds since the epoch."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def epoch_ms(iso: str) -> int:
    """A timestamp the service wrote, in whole milliseconds, as Redis keeps it."""
    return round(epoch(iso) * 1000)


# ---- deadlines on Redis's clock -------------------------------------------------------


#: How long `wait_past` waits at the most, in seconds (a deadline hours away is a bug).
WAIT_LIMIT = 60.0


async def redis_now_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def wait_past(redis: Redis, deadline: str | int) -> None:
    """Return once Redis's clock is past `deadline` (ISO timestamp or epoch ms).

    Each turn sleeps what Redis says is left, then asks again, so the wait ends
    within a millisecond or so of the deadline on any machine; `WAIT_LIMIT` only
    guards against a deadline that never comes.
    """
    target = epoch_ms(deadline) if isinstance(deadline, str) else deadline
    give_up = asyncio.get_running_loop().time() + WAIT_LIMIT
    while (left := target - await redis_now_ms(redis)) >= 0:
        assert asyncio.get_running_loop().time() < give_up, f"{deadline} never came"
        await asyncio.sleep((left + 1) / 1000)


async def next_millisecond(redis: Redis) -> None:
    """Return once Redis's clock has left the millisecond it shows now: whatever a
    script stamps afterwards (a session's `created_at`) is later than any time a
    script read before (an erase's cutoff), on any machine."""
    await wait_past(redis, await redis_now_ms(redis))


# ---- Redis keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKeys:
    """The names of one session's keys."""

    session: str
    messages: str
    idempotency: str
    idempotency_age: str
    cases: str
    tool_calls: str
    summaries: str
    owned: tuple[str, ...]


@dataclass(frozen=True)
class UserKeys:
    """The names of one user's keys that belong to no single session."""

    base: str
    expiry: str
    erase: str
    erasing: str
    message_counts: str
    user_counters: str

    def client(self, client_id: str) -> str:
        return f"{self.base}{layout.CLIENT}{client_id.encode('utf-8').hex()}"

    def status_index(self, status: str) -> str:
        return f"{self.base}{layout.STATUS_INDEX}{status}"

    def search_snapshot(self, walk: str) -> str:
        return f"{self.base}{layout.SEARCH_SNAPSHOT}{walk}"

    def suffix(self, key: str) -> str:
        """What follows the user's base in `key` (e.g. to group keys by kind)."""
        assert key.startswith(self.base), key
        return key[len(self.base) :]

    def session_of(self, key: str) -> str | None:
        """The session that owns `key` (one of `layout.SESSION_KEYS`), or None."""
        match = _SESSION_KEY.fullmatch(self.suffix(key))
        return match.group(1) if match else None

    def kind_of(self, key: str) -> str:
        """The suffix naming `key`'s kind (``layout.CLIENT`` etc.), without its id."""
        rest = self.suffix(key)
        return rest[: rest.index(":") + 1] if ":" in rest else rest


_KINDS = "|".join(re.escape(kind) for kind in layout.SESSION_KEYS)
_SESSION_KEY = re.compile(rf"(?:{_KINDS})(sess_[0-9a-f]{{32}})")

#: Every shape a key below a user's base may have (what follows the base), from the layout.
KEY_SUFFIX = re.compile(
    "|".join(
        (
            rf"(?:{_KINDS})sess_[0-9a-f]{{32}}",
            # A copy in progress names the session it copies (keys.COPY_OWNER).
            rf"{re.escape(layout.COPY_OWNER)}sess_[0-9a-f]{{32}}",
            rf"{re.escape(layout.CLIENT)}[0-9a-f]+",
            *(
                re.escape(kind)
                for kind in (layout.EXPIRY, layout.MESSAGE_COUNTS, layout.USER_COUNTERS)
            ),
            re.escape(layout.STATUS_INDEX) + "(?:" + "|".join(sorted(ALL_STATUSES)) + ")",
            rf"{re.escape(layout.CREATE_IDEMPOTENCY)}[0-9a-f]{{64}}",
            rf"{re.escape(layout.SEARCH_SNAPSHOT)}[0-9a-f]{{16}}",
            re.escape(layout.SEARCH_SNAPSHOTS),
            rf"{re.escape(layout.RATE)}[0-9]+",
        )
    )
)


def split_key(key: str, keys: Keys = KEYS) -> tuple[str, str] | None:
    """(owner's user id, what follows the base) of a user's key; None for any other key."""
    match = re.fullmatch(rf"{re.escape(keys.prefix)}:\{{([A-Za-z0-9_-]+)\}}:(.*)", key, re.DOTALL)
    if not match:
        return None
    return layout.decode_user(match.group(1)), match.group(2)


def keys_of(user_id: str, sid: str, keys: Keys = KEYS) -> SessionKeys:
    base = keys.base(user_id)
    return SessionKeys(
        session=keys.session(user_id, sid),
        messages=keys.messages(user_id, sid),
        idempotency=f"{base}{layout.IDEMPOTENCY}{sid}",
        idempotency_age=f"{base}{layout.IDEMPOTENCY_AGE}{sid}",
        cases=keys.cases(user_id, sid),
        tool_calls=keys.tool_calls(user_id, sid),
        summaries=keys.summaries(user_id, sid),
        owned=tuple(keys.of_session(user_id, sid)),
    )


def user_keys(user_id: str, keys: Keys = KEYS) -> UserKeys:
    base = keys.base(user_id)
    return UserKeys(
        base=base,
        expiry=keys.expiry(user_id),
        erase=f"{base}{layout.ERASE}",
        erasing=f"{base}{layout.ERASING}",
        message_counts=f"{base}{layout.MESSAGE_COUNTS}",
        user_counters=keys.user_counters(user_id),
    )


SESSION_RECORDS = f"{KEYS.prefix}:*:{layout.SESSION}*"

# ---- store and metrics --------------------------------------------------------------------


def store_of(client: httpx.AsyncClient) -> SessionStore:
    store: SessionStore = client.app.state.store  # type: ignore[attr-defined]
    return store


async def fill(store: SessionStore, redis: Redis, user_id: str, sid: str, count: int) -> None:
    """`count` appends through the store's own append script, pipelined in batches; each
    reply is decoded as the store decodes it (a refusal raises)."""
    script = store.scripts.append
    base = store.keys.base(user_id)
    await redis.script_load(script.source)
    for start in range(0, count, 2000):
        pipe = redis.pipeline(transaction=False)
        sent: list[AppendArgs] = []
        for n in range(start, min(start + 2000, count)):
            args = AppendArgs(
                sid=sid,
                role="user" if n % 2 == 0 else "assistant",
                content=f"message {n + 1}",
                metadata="",
                title="",
                title_folded="",
                idem="",
                fingerprint="",
                max_messages=count,
                idem_ttl_ms=86_400_000,
                if_match="",
                tokens=estimate_tokens(f"message {n + 1}"),
                estimated=True,
                tool_calls="",
                tool_call_id="",
                call_ids=(),
            )
            pipe.evalsha(script.sha, 1, base, *script.argv(args))
            sent.append(args)
        for args, reply in zip(sent, await pipe.execute(), strict=True):
            assert isinstance(args.decode(reply), AppendOk), reply


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0
