"""Lua scripts, loaded from `lua/` and prefixed with the key names and helpers.

Each script runs by EVALSHA; a server that lost its script cache (restart,
failover) gets the source again once. User data only ever travels in ARGV, laid
out by the script's codec (`protocol.py`) and read back by the binding
generated from it. The scripts are those the codecs name: declaring a codec is
the one registration a script needs.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from session_service.store.keys import LUA_PRELUDE
from session_service.store.protocol import CODECS, ScriptArgs, lua_binding


def _read(name: str) -> str:
    return resources.files("session_service.store").joinpath("lua", f"{name}.lua").read_text()


class Script:
    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: ScriptArgs) -> Any:
        argv = self.argv(args)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *argv)

    def argv(self, args: ScriptArgs) -> list[str | int]:
        """The ARGV of a call: its codec's layout (checked to be this script's codec)."""
        if args.script != self.name:
            raise TypeError(f"{type(args).__name__} is not the codec of {self.name}.lua")
        return args.argv()


def script_source(name: str) -> str:
    """What runs: key names, lib.lua, the codec's ARGV binding, then the script."""
    return f"{LUA_PRELUDE}{_read('lib')}\n{lua_binding(CODECS[name])}{_read(name)}"


class Scripts:
    """Every script of the store, by name (`scripts.append`), one per codec."""

    def __init__(self) -> None:
        self.by_name = {name: Script(name, script_source(name)) for name in sorted(CODECS)}

    def __getattr__(self, name: str) -> Script:
        try:
            return self.__dict__["by_name"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise AttributeError(f"no script {name}.lua has a codec in protocol.py") from None


@cache
def load_scripts() -> Scripts:
    return Scripts()
