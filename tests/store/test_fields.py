"""Every stored field name the Lua scripts use is declared in store/fields.py.

The scripts write the short names as literals (`'st'`, `'mc'`); this test reads each
script, finds every hash command on a session hash (`sk` or `k_session(...)`) and
every message or summary entry it builds, and holds the field names there to the
one declaration. A new field is declared first; a misspelt one fails here.
"""

from __future__ import annotations

import re
from importlib import resources

import pytest

from session_service.store import fields

FOLDERS = [resources.files(package).joinpath("lua") for package in ("session_service.store",
           "session_legacy")]  # fmt: skip
LUA = {p.name: p for folder in FOLDERS for p in folder.iterdir() if p.name.endswith(".lua")}
SCRIPTS = sorted(LUA)
CALL = re.compile(r"redis\.call\(\s*'([A-Z]+)'")
LITERAL = re.compile(r"^'([^']*)'$")
#: For each hash command, which of its arguments after the key are field names.
FIELD_ARGS = {
    "HSET": "even",
    "HSETNX": "first",
    "HINCRBY": "first",
    "HGET": "all",
    "HMGET": "all",
    "HDEL": "all",
    "HEXISTS": "all",
}


def _source(name: str) -> str:
    return re.sub(r"--[^\n]*", "", LUA[name].read_text())


def _arguments(source: str, start: int) -> list[str]:
    """The top-level arguments of the call whose '(' is at `start`."""
    depth, current, out = 0, "", []
    for char in source[start + 1 :]:
        if char in "({":
            depth += 1
        elif char in ")}":
            if depth == 0:
                out.append(current.strip())
                return out
            depth -= 1
        if char == "," and depth == 0:
            out.append(current.strip())
            current = ""
        else:
            current += char
    raise AssertionError("unbalanced call")


def _literals(args: list[str]) -> set[str]:
    return {m[1] for arg in args if (m := LITERAL.match(arg))}


def session_fields_used(source: str) -> set[str]:
    used: set[str] = set()
    for match in CALL.finditer(source):
        command = match[1]
        if command not in FIELD_ARGS:
            continue
        args = _arguments(source, source.index("(", match.start()))[1:]
        if not args or not (args[0] == "sk" or args[0].startswith("k_session(")):
            continue
        rest = args[1:]
        which = FIELD_ARGS[command]
        chosen = rest[::2] if which == "even" else rest[:1] if which == "first" else rest
        used |= _literals(chosen)
    return used


def entry_fields_used(source: str, key_pattern: str) -> set[str]:
    """Field names of the entries XADD writes to keys matching `key_pattern`."""
    used: set[str] = set()
    for match in CALL.finditer(source):
        if match[1] != "XADD":
            continue
        args = _arguments(source, source.index("(", match.start()))
        if re.match(key_pattern, args[1]):
            used |= _literals(args[3::2])
    return used


def test_the_parser_finds_fields_and_would_catch_an_undeclared_one() -> None:
    source = "redis.call('HMGET', sk, 'st', 'zz')\nredis.call('HSET', k_session(x), 'q1', I(2))"
    assert session_fields_used(source) == {"st", "zz", "q1"}
    assert {"zz", "q1"} - set(fields.SESSION)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_session_field_a_script_uses_is_declared(name: str) -> None:
    assert session_fields_used(_source(name)) - set(fields.SESSION) == set()


def test_every_declared_session_field_is_used_by_a_script_or_the_store() -> None:
    """Some fields travel from Python as pairs (create's and fork's `fields`)."""
    used = set().union(*(session_fields_used(_source(name)) for name in SCRIPTS))
    store = resources.files("session_service.store")
    python = "".join(
        p.read_text() for p in store.iterdir() if p.name.endswith(".py") and p.name != "fields.py"
    )
    used |= set(re.findall(r"\"([a-z]{1,2})\"", python))
    assert set(fields.SESSION) - used == set()


def test_message_and_summary_entries_use_declared_fields() -> None:
    # Both appends (one message, a batch) build entries in lib.lua's store_message.
    builder = _source("lib.lua").split("local function store_message(", 1)[1].split("\nend\n")[0]
    built = set(re.findall(r"'([a-z]{1,2})'", builder.split("local entry = ", 1)[1].split("}")[0]))
    built |= set(re.findall(r"entry\[#entry \+ 1\] = '([a-z]{1,2})'", builder))
    assert built and built <= set(fields.MESSAGE)
    assert {"r", "c", "t", "m", "k", "e", "tc", "ti", "ta"} <= built
    staged = entry_fields_used(_source("import_stage.lua"), r"jk$")
    assert staged and staged <= set(fields.MESSAGE)
    summaries = entry_fields_used(_source("summarize.lua"), r"k_summaries\(")
    assert summaries == set(fields.SUMMARY)
