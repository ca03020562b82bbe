"""Rules that exist in Python and in Lua are held equal on a real server.

Each Lua twin runs as lib.lua defines it (the prelude and lib.lua, then a few
lines that call the function), over inputs hypothesis generates, and must answer
what its Python twin answers:

- the ETag strings (`codec.session_etag` / `messages_etag`, lib.lua `etag`);
- the If-Match check (`conditional.if_match_holds`, lib.lua `precondition`);
- the token estimate of an entry without a stored count (`tokens.estimate_tokens`,
  lib.lua `entry_info`);
- the last message id (`codec.last_seq`, lib.lua `last_id`);
- the generated prelude's key lists and status sets (keys.py, domain/status.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis

from session_service.api.conditional import if_match_arg, if_match_holds, precondition_arg
from session_service.domain.status import ALL_STATUSES, UNARCHIVED
from session_service.domain.tokens import estimate_tokens
from session_service.store import keys
from session_service.store.codec import last_seq, messages_etag, session_etag

BASE = "twin:{dGVzdA}:"
SID = "sess_twin"
LIB = resources.files("session_service.store").joinpath("lua", "lib.lua").read_text()
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def server(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def lua(server: Redis, body: str, *args: Any) -> Any:
    """Run `body` after the prelude and lib.lua, as every script runs."""
    return server.eval(f"{keys.LUA_PRELUDE}{LIB}\n{body}", 1, BASE, *args)


def store_session(server: Redis, fields: dict[str, str]) -> None:
    key = f"{BASE}{keys.SESSION}{SID}"
    server.delete(key)
    if fields:
        server.hset(key, mapping=fields)


counters = st.one_of(st.none(), st.integers(0, 10**15).map(str))


def present(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value is not None}


@EXAMPLES
@given(ca=counters, ev=counters, mv=counters)
def test_etags_are_the_same_strings_in_both_languages(
    server: Redis, ca: str | None, ev: str | None, mv: str | None
) -> None:
    fields = present(ca=ca, ev=ev, mv=mv)
    store_session(server, fields)
    got = lua(server, "return {etag(ARGV[1], 's'), etag(ARGV[1], 'm')}", SID)
    assert got == [session_etag(fields), messages_etag(fields)]


tags = st.one_of(
    st.just("*"),
    st.text(st.characters(codec="ascii", exclude_characters='"'), max_size=12).map(
        lambda t: f'"{t}"'
    ),
    st.text(max_size=12).map(lambda t: f'W/"{t}"'),
    st.text(max_size=20),
)


@EXAMPLES
@given(
    ca=st.integers(0, 10**13),
    ev=st.integers(0, 50),
    kind=st.sampled_from(["s", "m"]),
    header=st.one_of(st.none(), st.lists(tags, max_size=4).map(", ".join)),
    include_current=st.sampled_from([None, "strong", "weak"]),
    none_header=st.one_of(st.none(), st.lists(tags, max_size=3).map(", ".join)),
    none_current=st.sampled_from([None, "strong", "weak"]),
)
def test_the_if_match_check_agrees(
    server: Redis,
    ca: int,
    ev: int,
    kind: str,
    header: str | None,
    include_current: str | None,
    none_header: str | None,
    none_current: str | None,
) -> None:
    """If-Match and If-None-Match, as one script argument (api/conditional.py)."""
    fields = {"ca": str(ca), "ev": str(ev), "mv": str(ev)}
    store_session(server, fields)
    current = session_etag(fields) if kind == "s" else messages_etag(fields)

    def with_current(value: str | None, how: str | None) -> str | None:
        if how is None:
            return value
        tag = ("W/" if how == "weak" else "") + current
        return f"{value}, {tag}" if value else tag

    header = with_current(header, include_current)
    none_header = with_current(none_header, none_current)
    arg = precondition_arg(header, none_header)
    if none_header is None:
        assert arg == if_match_arg(header)
    refused = lua(server, "return precondition(ARGV[1], ARGV[2], ARGV[3])", SID, kind, arg)
    assert (refused is None) == if_match_holds(arg, current)
    if refused is not None:
        assert refused == ["err", "precondition_failed", current]


@EXAMPLES
@given(content=st.text(max_size=300))
def test_the_token_estimate_of_an_uncounted_entry_agrees(server: Redis, content: str) -> None:
    got = lua(server, "return entry_info({'r', 'user', 'c', ARGV[1]}).k", content)
    assert got == estimate_tokens(content)


@EXAMPLES
@given(li=counters, mc=counters)
def test_the_last_message_id_agrees(server: Redis, li: str | None, mc: str | None) -> None:
    fields = present(li=li, mc=mc)
    call = "return I(last_id(ARGV[1] ~= '' and ARGV[1] or nil, ARGV[2] ~= '' and ARGV[2] or nil))"
    assert int(lua(server, call, li or "", mc or "")) == last_seq(fields)


def test_the_prelude_holds_the_python_key_lists_and_status_sets(server: Redis) -> None:
    got = json.loads(
        lua(
            server,
            "return cjson.encode({SESSION_KEYS, CONVERSATION_KEYS, STATUSES, EVICTABLE,"
            " keys_of('x', SESSION_KEYS)})",
        )
    )
    assert got[0] == list(keys.SESSION_KEYS)
    assert got[1] == list(keys.CONVERSATION_KEYS)
    assert got[2] == list(ALL_STATUSES)
    assert got[3] == list(UNARCHIVED)
    assert got[4] == keys.Keys("twin").of_session("test", "x")
