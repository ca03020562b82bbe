"""The fast path answers exactly like FastAPI's router: same status, headers and body.

A corpus of valid and invalid requests is replayed on a clean database against
an app with FAST_PATH on and one with it off; every response (status, the
headers that matter, the whole body with session ids and timestamps normalised,
ETags in full) and the metrics label each request was counted under must be the
same. The corpus has two parts: hand-written requests in a meaningful order (a
conversation, its lifecycle), and requests generated from the app's routes, so a
new route is compared the day it is added: for every API route and method, no
identity, an unknown and a foreign session, a wrong body of every kind, a stale
`If-Match`, and a wrong value for every query parameter. The rest of tests/api runs
through the fast path only (tests/api/conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from redis.asyncio import Redis
from starlette.types import Message, Scope

from session_service.app import routes_in_order
from session_service.observability import metrics
from tests.conftest import ClientFactory, user
from tests.helpers import API

SID = re.compile(r"sess_[0-9a-f]{32}")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")
#: Headers whose value is part of the answer (request ids, dates and lengths are not).
HEADERS = ("content-type", "location", "allow", "retry-after", "content-disposition", "etag")
#: Numbers derived from the clock, not from the request.
CLOCK_FIELDS = {"duration_seconds"}
NO_SESSION = "sess_00000000000000000000000000000000"
JSON = {"content-type": "application/json"}


@pytest.fixture
def fast_path() -> bool:
    """This module builds both apps itself: no need to run it twice."""
    return True


ETAG = re.compile(r'^"(\d+)\.([sm]\d+)"$')
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Normaliser:
    """Session ids become <sid:N> in order of first appearance; timestamps <ts>.

    An ETag (`"<created ms>.s<version>"`) is compared in full: its version as it is,
    its creation time as the <sid:N> of the session created at that millisecond, which
    must be the session the request is about. A tag of any other shape is kept as is.
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.created: dict[str, int] = {}  # session id -> its created_at in ms
        self.about: str | None = None  # the session the response being read is about

    def learn(self, body: Any) -> None:
        """Note a session's creation time from any answer showing the session."""
        if isinstance(body, dict) and isinstance(body.get("created_at"), str):
            sid = body.get("session_id")
            if isinstance(sid, str) and SID.fullmatch(sid):
                created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00"))
                self.created.setdefault(sid, (created - EPOCH) // timedelta(milliseconds=1))

    def etag(self, value: str, about: str | None) -> str:
        found = ETAG.match(value)
        if found is None:
            return value
        ms, version = int(found[1]), found[2]
        if about is not None and self.created.get(about) == ms:
            return f'"{self.text(about)}.{version}"'
        return f'"<not the ETag of {about}: {ms}>.{version}"'  # differs run to run

    def in_tie_order(self, sessions: list[Any]) -> list[Any]:
        """A list answer, checked to be in the promised order (last activity, then id,
        descending), then put in the order the corpus created its sessions: which of
        two sessions was active later can differ by a millisecond from run to run
        (each run has its own clock and its own random ids), so the order is held to
        the contract here and the two runs' lists are compared as the same sessions."""
        if not all(isinstance(s, dict) and "last_activity_at" in s for s in sessions):
            return sessions
        order = [(s["last_activity_at"], s["session_id"]) for s in sessions]
        assert order == sorted(order, reverse=True), order

        def created(session: dict[str, Any]) -> int:
            return int(self.ids.get(session["session_id"], "<sid:-1>")[5:-1])

        return sorted(sessions, key=created)

    def text(self, value: str) -> str:
        value = SID.sub(lambda m: self.ids.setdefault(m[0], f"<sid:{len(self.ids)}>"), value)
        return ISO.sub("<ts>", value)

    def value(self, value: Any, key: str = "") -> Any:
        if key in CLOCK_FIELDS:
            return "<clock>"
        if key == "sessions" and isinstance(value, list):
            value = self.in_tie_order(value)
        if key == "etag" and isinstance(value, str):  # a 412's body names the current ETag
            return self.etag(value, self.about)
        if isinstance(value, dict):
            return {self.text(k): self.value(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def response(self, response: httpx.Response, url: str = "") -> dict[str, Any]:
        try:
            raw: Any = response.json()
        except ValueError:
            raw = None
        self.learn(raw)
        named = SID.findall(url)
        about = raw.get("session_id") if isinstance(raw, dict) else None
        about = about if isinstance(about, str) and about in self.created else None
        about = self.about = about or (named[0] if named else None)
        headers = {
            name: (
                self.etag(response.headers[name], about)
                if name == "etag"
                else self.text(response.headers[name])
            )
            for name in HEADERS
            if name in response.headers
        }
        body = self.value(raw) if raw is not None else self.text(response.text)
        return {"status": response.status_code, "headers": headers, "body": body}


Step = tuple[str, str, dict[str, Any]]


def corpus() -> list[Step]:
    """Requests in order; `{s0}`.. are the sessions created so far, `{x}` someone else's."""
    bad_key = {**user(), "Idempotency-Key": "\x7f"}
    one = {"role": "user", "content": "one"}
    call = {"id": "c1", "name": "df", "arguments": {"path": "/"}}
    turn = [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "ok", "tool_call_id": "c1"},
    ]
    return [
        # creates: valid, resumed, idempotent, and every kind of invalid body
        ("POST", API, {"json": {"title": "Disk full", "metadata": {"a": [1, {"b": None}]}}}),
        ("POST", API, {"json": {"client_id": "ext", "session_type": "incident"}}),
        ("POST", API, {"json": {"client_id": "ext"}}),
        ("POST", API, {"json": {"title": "k"}, "headers": {**user(), "Idempotency-Key": "k1"}}),
        ("POST", API, {"json": {"title": "k"}, "headers": {**user(), "Idempotency-Key": "k1"}}),
        ("POST", API, {"json": {"title": "j"}, "headers": {**user(), "Idempotency-Key": "k1"}}),
        ("POST", API, {"json": {}, "headers": {**user(), "Idempotency-Key": "x" * 256}}),
        ("POST", API, {}),
        ("POST", API, {"content": b"null", "headers": {**user(), **JSON}}),
        ("POST", API, {"json": [1]}),
        ("POST", API, {"json": "text"}),
        ("POST", API, {"content": b"{nope", "headers": {**user(), **JSON}}),
        ("POST", API, {"content": b'{"title": "t"}', "headers": {**user(), "X-No": "type"}}),
        ("POST", API, {"content": b"title=t", "headers": {**user(), "content-type": "text/plain"}}),
        ("POST", API, {"content": b'{"title": NaN}', "headers": {**user(), **JSON}}),
        (
            "POST",
            API,
            {
                "content": b'{"metadata": {"n": 18446744073709551616}}',
                "headers": {**user(), **JSON},
            },
        ),
        (
            "POST",
            API,
            {"content": b'{"metadata": {"n": 1.5, "m": [1e400]}}', "headers": {**user(), **JSON}},
        ),
        ("POST", API, {"content": b'\xef\xbb\xbf{"title": "bom"}', "headers": {**user(), **JSON}}),
        ("POST", API, {"json": {"title": "x" * 201, "unknown": 1}}),
        ("POST", API, {"json": {"timeout_minutes": 0}}),
        ("POST", API, {"json": {"metadata": {"k" * 129: 1}}}),
        ("POST", API, {"json": {"title": "t"}, "headers": {"X-User-ID": ""}}),
        # reads
        ("GET", f"{API}/{{s0}}", {}),
        ("GET", f"{API}/{{s0}}?include_messages=true&limit=2", {}),
        ("GET", f"{API}/{{s0}}?limit=0", {}),
        ("GET", f"{API}/{{x}}", {}),
        ("GET", f"{API}/{NO_SESSION}", {}),
        ("GET", f"{API}/not-an-id", {}),
        ("GET", f"{API}/{'s' * 65}", {}),
        ("GET", f"{API}/", {}),
        ("GET", API, {}),
        ("GET", f"{API}?status=active&limit=1", {}),
        ("GET", f"{API}?status=nope", {}),
        ("HEAD", f"{API}/{{s0}}", {}),
        ("HEAD", f"{API}/{{s0}}/messages", {}),
        ("HEAD", f"{API}/{{x}}/export", {}),
        ("GET", f"{API}/{{s0}}", {"headers": {**user(), "If-Match": '"stale"'}}),
        (
            "PATCH",
            f"{API}/{{s0}}",
            {"json": {"title": "t"}, "headers": {**user(), "If-None-Match": "*"}},
        ),
        ("POST", API, {"content": b'{"title": "\\ud800"}', "headers": {**user(), **JSON}}),
        (
            "POST",
            f"{API}/{{s0}}/messages",
            {"content": b'{"role": "user", "content": "\\udfff"}', "headers": {**user(), **JSON}},
        ),
        ("OPTIONS", f"{API}/{{s0}}", {}),
        ("TRACE", f"{API}/{{s0}}", {}),
        # appends
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "user", "content": "hello there"}}),
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "assistant", "content": "x"}}),
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "robot", "content": "x"}}),
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "user"}}),
        ("POST", f"{API}/{{s0}}/messages", {"json": [1]}),
        ("POST", f"{API}/{{s0}}/messages", {}),
        ("POST", f"{API}/{{s0}}/messages", {"content": b"[", "headers": {**user(), **JSON}}),
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "user", "content": "é" * 40000}}),
        ("POST", f"{API}/{{x}}/messages", {"json": {"role": "robot"}}),
        ("POST", f"{API}/{{x}}/messages", {"json": {"role": "user", "content": "é" * 40000}}),
        ("POST", f"{API}/{NO_SESSION}/messages", {"json": {"role": "user", "content": "x"}}),
        (
            "POST",
            f"{API}/{{x}}/messages",
            {
                "json": {"role": "user", "content": "x"},
                "headers": {**user(), "Idempotency-Key": "\x7f"},
            },
        ),
        (
            "POST",
            f"{API}/{{s0}}/messages",
            {"json": {"role": "user", "content": "x"}, "headers": bad_key},
        ),
        ("POST", f"{API}//messages", {"json": {"role": "user", "content": "x"}}),
        (
            "POST",
            f"{API}/{{s1}}/messages",
            {
                "json": {"role": "user", "content": "r"},
                "headers": {**user(), "Idempotency-Key": "m1"},
            },
        ),
        (
            "POST",
            f"{API}/{{s1}}/messages",
            {
                "json": {"role": "user", "content": "r"},
                "headers": {**user(), "Idempotency-Key": "m1"},
            },
        ),
        (
            "POST",
            f"{API}/{{s1}}/messages",
            {
                "json": {"role": "user", "content": "s"},
                "headers": {**user(), "Idempotency-Key": "m1"},
            },
        ),
        # batch appends
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": turn}}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": []}}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": [one] * 65}}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": [one, {"role": "x"}]}}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": [one], "extra": 1}}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": [one]}),
        ("POST", f"{API}/{{s0}}/messages/batch", {"json": {"messages": [one, turn[1]]}}),
        (
            "POST",
            f"{API}/{{s0}}/messages/batch",
            {"json": {"messages": [one, {"role": "user", "content": "é" * 40000}]}},
        ),
        ("POST", f"{API}/{{x}}/messages/batch", {"json": {"messages": [{"role": "x"}]}}),
        ("POST", f"{API}/{NO_SESSION}/messages/batch", {"json": {"messages": [one]}}),
        *[
            (
                "POST",
                f"{API}/{{s1}}/messages/batch",
                {"json": {"messages": body}, "headers": {**user(), "Idempotency-Key": "b1"}},
            )
            for body in ([one, one], [one, one], [one])
        ],
        # paging, one message, stats, export
        ("GET", f"{API}/{{s0}}/messages", {}),
        ("GET", f"{API}/{{s0}}/messages?order=asc&limit=1", {}),
        ("GET", f"{API}/{{s0}}/messages?after=msg_0000000001&before=msg_0000000002", {}),
        ("GET", f"{API}/{{s0}}/messages?after=bad", {}),
        ("GET", f"{API}/{{s0}}/messages/msg_0000000001", {}),
        ("GET", f"{API}/{{s0}}/messages/msg_0000000099", {}),
        ("GET", f"{API}/{{s0}}/messages/nope", {}),
        ("GET", f"{API}/{{s0}}/stats", {}),
        ("GET", f"{API}/{{s0}}/export", {}),
        ("GET", f"{API}/{{s0}}/export?format=markdown", {}),
        ("GET", f"{API}/{{s0}}/export?format=pdf", {}),
        ("GET", f"{API}/{{s0}}/recovery-info", {}),
        # updates and the lifecycle
        ("PATCH", f"{API}/{{s0}}", {"json": {"title": "New", "metadata": {"a": None, "b": 2}}}),
        ("PUT", f"{API}/{{s0}}", {"json": {"description": "", "context": {"c": [1]}}}),
        ("PATCH", f"{API}/{{s0}}", {"json": {"status": "nope"}}),
        ("PATCH", f"{API}/{{x}}", {"json": {"status": "nope"}}),
        ("PATCH", f"{API}/{{s0}}", {"json": {"status": "active"}}),
        ("POST", f"{API}/{{s0}}/heartbeat", {}),
        ("POST", f"{API}/{NO_SESSION}/heartbeat", {}),
        ("POST", f"{API}/{{s0}}/cleanup", {}),
        ("POST", f"{API}/search", {"json": {"query": "NEW", "limit": 1}}),
        ("POST", f"{API}/search", {"json": {"limit": 0}}),
        ("POST", f"{API}/{{s0}}/cases", {"json": {"case_id": "c1"}}),
        ("GET", f"{API}/{{s0}}/cases", {}),
        ("DELETE", f"{API}/{{s0}}/cases/c1", {}),
        ("POST", f"{API}/{{s0}}/archive", {}),
        ("POST", f"{API}/{{s0}}/messages", {"json": {"role": "user", "content": "late"}}),
        ("POST", f"{API}/{{s0}}/restore", {}),
        ("POST", f"{API}/{{s0}}/restore", {}),
        ("DELETE", f"{API}/{{s1}}", {}),
        ("DELETE", f"{API}/{{s1}}", {}),
        ("POST", f"{API}/cleanup", {}),
        ("DELETE", "/api/v1/users/someone/sessions", {}),
        (
            "DELETE",
            "/api/v1/users/someone/sessions",
            {"headers": user(**{"X-User-Roles": "admin"})},
        ),
        ("GET", "/api/v1/nothing", {}),
        ("GET", "/health", {}),
        ("GET", "/", {}),
    ]


#: Values for path parameters: the caller's first session, and ids that name nothing.
PATH_VALUES = {"message_id": "msg_0000000001", "case_id": "c1", "user_id": "someone"}
#: Wrong values for query parameters: out of range, wrong type, too long.
BAD_QUERY_VALUES = ("-1", "nope", "9" * 30)


def api_routes() -> list[tuple[str, APIRoute]]:
    """(method, route) of every API route, in the order the router tries them."""
    from session_service.app import create_app
    from session_service.config import Settings

    app = create_app(Settings(_env_file=None, log_level="ERROR"))  # type: ignore[call-arg]
    return [
        (method, route)
        for route in routes_in_order(app)
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in sorted(route.methods)
    ]


def _fill(route: APIRoute, session: str) -> str:
    values = {"session_id": session, **PATH_VALUES}
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: values[m[1]], route.path)


def generated_corpus() -> list[Step]:
    """The refusals of every API route, generated from the routes themselves."""
    steps: list[Step] = []
    for method, route in api_routes():
        mine, theirs, nobody = (_fill(route, sid) for sid in ("{s0}", "{x}", NO_SESSION))
        steps.append((method, mine, {"headers": {}}))  # no identity: 401
        if "{session_id}" in route.path:
            steps.append((method, theirs, {}))
            steps.append((method, nobody, {}))
        if route.body_field is not None:
            steps += [
                (method, mine, {"json": [1]}),
                (method, mine, {"json": "text"}),
                (method, mine, {"content": b"{", "headers": {**user(), **JSON}}),
                (method, mine, {"content": b"\xff\xfe", "headers": {**user(), **JSON}}),
                (method, theirs, {"json": [1]}),
            ]
        if method in ("POST", "PATCH", "PUT", "DELETE") and "{session_id}" in route.path:
            stale = {**user(), "If-Match": '"0.s0"'}
            steps.append((method, mine, {"json": [1], "headers": stale}))
        for param in route.dependant.query_params:
            name = param.alias
            steps += [(method, f"{mine}?{name}={bad}", {}) for bad in BAD_QUERY_VALUES]
    return steps


def test_the_generated_corpus_reaches_every_api_route() -> None:
    covered = {(method, path) for method, path, _ in generated_corpus()}
    for method, route in api_routes():
        assert (method, _fill(route, "{s0}")) in covered, (method, route.path)
    assert len(api_routes()) >= 30


def _counts() -> dict[tuple[str, ...], float]:
    return {
        tuple(sample.labels.values()): sample.value
        for family in metrics.REQUESTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def _replay(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    answer = (await client.post(API, json={}, headers=user("someone-else"))).json()
    other = answer["session_id"]
    created: list[str] = []
    normalise = Normaliser()
    normalise.text(other)
    normalise.learn(answer)
    answers = []
    for method, path, kwargs in corpus() + generated_corpus():
        names = {f"s{i}": sid for i, sid in enumerate(created)}
        url = path.format(x=other, **names)
        kwargs = {"headers": user(), **kwargs}
        before = _counts()
        response = await client.request(method, url, **kwargs)
        counted = [key for key, value in _counts().items() if value != before.get(key, 0)]
        if method == "POST" and path == API and response.status_code == 201:
            created.append(response.json()["session_id"])
        answers.append({"request": f"{method} {path}", "counted": counted})
        answers[-1].update(normalise.response(response, url))
    return answers


async def test_the_corpus_gets_the_same_answers_both_ways(
    make_client: ClientFactory, redis: Redis
) -> None:
    """Full responses and metrics labels, request by request, on the same clean database."""
    async with make_client(fast_path=True, max_message_bytes=65536) as client:
        fast = await _replay(client)
    await redis.flushall()
    async with make_client(fast_path=False, max_message_bytes=65536) as client:
        router = await _replay(client)
    assert len(fast) == len(router) == len(corpus()) + len(generated_corpus())
    for one, other in zip(fast, router, strict=True):
        assert one == other
    etags = [answer["headers"]["etag"] for answer in fast if "etag" in answer["headers"]]
    assert len(etags) >= 20 and all(tag.startswith('"<sid:') for tag in etags), etags
    statuses = {answer["status"] for answer in fast}
    assert {200, 201, 204, 307, 404, 405, 409, 413, 422} <= statuses  # the corpus covers them


def _tagged(etag: str, created: str = "2026-01-01T00:00:00.123Z") -> httpx.Response:
    body = {"session_id": "sess_" + "a" * 32, "created_at": created}
    return httpx.Response(200, json=body, headers={"ETag": etag})


def test_etags_are_compared_in_full() -> None:
    """Same state on two runs: equal; another version or another session's tag: not."""
    one, two = Normaliser(), Normaliser()
    here, there = "2026-01-01T00:00:00.123Z", "2026-01-01T00:00:07.456Z"
    same = one.response(_tagged('"1767225600123.s2"', here))
    assert same == two.response(_tagged('"1767225607456.s2"', there))
    assert same["headers"]["etag"] == '"<sid:0>.s2"'
    assert one.response(_tagged('"1767225600123.s3"', here)) != same
    assert one.response(_tagged('"1767225600123.m2"', here)) != same
    assert Normaliser().response(_tagged('"1767225600999.s2"', here)) != same
    assert Normaliser().response(_tagged('W/"x"', here))["headers"]["etag"] == 'W/"x"'


async def _asgi(app: Any, method: str, path: str, body: bytes = b"") -> tuple[int, Scope]:
    """Call the app directly and keep the scope, to see which code dispatched."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"x-user-id", b"u1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1), "server": ("testserver", 80), "state": {},
    }  # fmt: skip
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], scope


Call = Callable[[str, str, bytes], Awaitable[tuple[int, Scope]]]


async def test_the_fast_path_really_serves_and_the_setting_turns_it_off(
    make_client: ClientFactory,
) -> None:
    """Starlette's router marks the scopes it handles; served requests never reach it."""
    for fast in (True, False):
        async with make_client(fast_path=fast) as client:
            app = client.app  # type: ignore[attr-defined]
            status, scope = await _asgi(app, "POST", API, b'{"title": "t"}')
            assert status == 201
            assert ("router" not in scope) is fast
            assert scope["route"].path == API
            status, scope = await _asgi(app, "GET", f"{API}/", b"")
            assert status == 307
            assert "router" in scope  # not served: the router redirects


async def test_the_fast_path_tries_the_routes_the_router_tries_in_its_order(
    make_client: ClientFactory,
) -> None:
    async with make_client() as client:
        app = client.app  # type: ignore[attr-defined]
        routes = routes_in_order(app)
        paths = [getattr(route, "path", None) for route in routes]
        assert paths.index(f"{API}/cleanup") < paths.index(f"{API}/{{session_id}}/cleanup")
        operations = {
            (method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
        }
        declared = {
            (method, route.path_format)
            for route in routes
            if isinstance(route, APIRoute)
            for method in route.methods
        }
        assert declared == operations
