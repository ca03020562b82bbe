"""The contract between Python and the Lua scripts: the same arguments on both sides.

A script with a codec (store/protocol.py) reads its arguments as `A.<name>`
through a binding generated from the codec. These tests check, for every such
script, that the Lua never reads ARGV itself, reads exactly the codec's fields,
and that the values the codec sends arrive intact on a real server (with the
right Lua types). The scripts still read by position are listed in UNCONVERTED;
the list may only shrink.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

import session_legacy.codecs  # noqa: F401  (its codecs register the import's scripts)
from session_service.store import protocol
from session_service.store.keys import LUA_PRELUDE
from session_service.store.replies import Done
from session_service.store.scripts import load_scripts

SCRIPTS = sorted(protocol.CODECS)
FIELD = re.compile(r"\bA\.([A-Za-z_][A-Za-z0-9_]*)")


def _lua(name: str) -> str:
    package = protocol.CODECS[name].lua_package if name != "lib" else "session_service.store"
    source = resources.files(package).joinpath("lua", f"{name}.lua").read_text()
    return re.sub(r"--[^\n]*", "", source)  # comments may name anything


def test_every_script_file_has_exactly_one_codec_and_is_loaded() -> None:
    packages = {codec.lua_package for codec in protocol.CODECS.values()}
    assert packages == {"session_service.store", "session_legacy"}
    files = {
        path.name.removesuffix(".lua")
        for package in packages
        for path in resources.files(package).joinpath("lua").iterdir()
        if path.name.endswith(".lua")
    }
    assert files - {"lib"} == set(protocol.CODECS)
    assert set(load_scripts().by_name) == set(protocol.CODECS)
    for name, codec in protocol.CODECS.items():
        assert codec.script == name
        assert getattr(load_scripts(), name).name == name


def test_a_codec_registers_its_script_and_two_codecs_cannot_claim_one() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True, slots=True, kw_only=True)
    class ProbeArgs(protocol.ScriptArgs[Done]):
        script = "probe_only_in_this_test"
        sid: str

    try:
        assert protocol.CODECS["probe_only_in_this_test"] is ProbeArgs
        with pytest.raises(TypeError, match="both claim"):

            @dataclass(frozen=True, slots=True, kw_only=True)
            class OtherArgs(protocol.ScriptArgs[Done]):
                script = "probe_only_in_this_test"

        with pytest.raises(TypeError, match="must name its script"):

            class NamelessArgs(protocol.ScriptArgs):
                pass
    finally:
        del protocol.CODECS["probe_only_in_this_test"]
        protocol.REPLIES.pop("probe_only_in_this_test", None)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_codec_takes_its_arguments_by_name_only(name: str) -> None:
    codec = protocol.CODECS[name]
    assert all(field.kw_only for field in dataclasses.fields(codec))
    if codec.layout():
        with pytest.raises(TypeError, match="positional"):
            codec(*(getattr(_sample(codec, 1), f) for f, _ in codec.layout()))


def test_a_positional_codec_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class PositionalArgs(protocol.ScriptArgs[Done]):
        script = "positional_only_in_this_test"
        sid: str

    try:
        with pytest.raises(TypeError, match="kw_only=True"):
            PositionalArgs.layout()
    finally:
        del protocol.CODECS["positional_only_in_this_test"]
        protocol.REPLIES.pop("positional_only_in_this_test", None)


def test_a_script_refuses_another_scripts_codec() -> None:
    with pytest.raises(TypeError, match=r"is not the codec of append\.lua"):
        load_scripts().append.argv(protocol.HeartbeatArgs(sid="sess_x"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_the_script_reads_exactly_its_codecs_fields(name: str) -> None:
    source = _lua(name)
    assert "ARGV" not in source, f"{name}.lua reads ARGV by position; read A.<field>"
    read = set(FIELD.findall(source))
    declared = {field for field, _ in protocol.CODECS[name].layout()}
    assert read - declared == set(), f"{name}.lua reads fields its codec does not send"
    assert declared - read == set(), f"{name}.lua ignores fields its codec sends"


def test_lib_reads_no_arguments() -> None:
    assert "ARGV" not in _lua("lib")
    assert not FIELD.findall(_lua("lib"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_replay_is_answered_through_lib_replay(name: str) -> None:
    """lib.lua's replay() rewrites the record first, so that the WAIT after it
    confirms the original write on a replica (tests/topology/test_replayed_writes.py
    shows why); a script that builds a 'replay' answer itself skips that."""
    source = _lua(name)
    assert "'replay'" not in source and '"replay"' not in source, (
        f"{name}.lua answers 'replay' without replay()"
    )


def _sample(codec: type[protocol.ScriptArgs], variant: int) -> protocol.ScriptArgs:
    """Values of every kind, including the awkward ones (empty, None, '|', unicode)."""
    values: dict[str, Any] = {}
    for i, (name, kind) in enumerate(codec.layout()):
        if kind == "str":
            values[name] = ["", f"{name} é|,{i}"][variant % 2]
        elif kind == "int":
            values[name] = [0, 1_700_000_000_000 + i][variant % 2]
        elif kind == "int?":
            values[name] = [None, 86_400_000 + i][variant % 2]
        elif kind == "bool":
            values[name] = bool(variant % 2)
        elif kind == "list":
            values[name] = [(), (f"{name}-a", "", "ü")][variant % 2]
        else:
            values[name] = [(), ((f"{name}:k", '{"j": 1}'), ("", ""))][variant % 2]
    return codec(**values)


def _as_lua_sees_it(args: protocol.ScriptArgs) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind in args.layout():
        value = getattr(args, name)
        if kind == "pairs":
            value = [part for pair in value for part in pair]
        elif kind == "list":
            value = list(value)
        if value is None or value == []:
            continue  # nil, or an empty table: cjson shows it as {}, checked below
        out[name] = value
    return out


@pytest.fixture
async def server(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.mark.parametrize("variant", [0, 1])
@pytest.mark.parametrize("name", SCRIPTS)
async def test_what_python_sends_is_what_lua_reads(server: Redis, name: str, variant: int) -> None:
    """The binding a script runs with, on a real server, given the codec's ARGV."""
    codec = protocol.CODECS[name]
    args = _sample(codec, variant)
    probe = (
        LUA_PRELUDE
        + protocol.lua_binding(codec)
        + "local out = {}\n"
        + "for k, v in pairs(A) do\n"
        + "  if type(v) == 'table' and #v == 0 then out[k] = 'empty'\n"
        + "  else out[k] = v end\n"
        + "end\n"
        + "return cjson.encode(out)\n"
    )
    seen = json.loads(await server.eval(probe, 1, "probe:{x}:", *args.argv()))
    expected = _as_lua_sees_it(args)
    for field, kind in codec.layout():
        if kind in ("list", "pairs") and field not in expected:
            assert seen.get(field) == "empty", field
            seen.pop(field, None)
    assert seen == expected


@pytest.mark.parametrize("name", ["archive", "import_commit", "list"])
async def test_a_call_with_another_layout_is_refused_before_any_write(
    server: Redis, name: str
) -> None:
    """An argument list of the wrong length is an error, never a misread write."""
    codec = protocol.CODECS[name]
    argv = _sample(codec, 1).argv()
    script = load_scripts().by_name[name]
    with pytest.raises(ResponseError, match="ARGV has"):
        await server.eval(script.source, 1, "contract:{x}:", *argv, "extra")
    assert await server.keys("contract:*") == []
