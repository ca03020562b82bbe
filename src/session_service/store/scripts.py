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


def _read(name: str, package: str = "session_service.store") -> str:
    return resources.files(package).joinpath("lua", f"{name}.lua").read_text()


class Script:
    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: ScriptArgs[Any]) -> Any:
        argv = self.argv(args)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *argv)

    def argv(self, args: ScriptArgs[Any]) -> list[str | int]:
        """The ARGV of a call: its codec's layout (checked to be this script's codec)."""
        if args.script != self.name:
            raise TypeError(f"{type(args).__name__} is not the codec of {self.name}.lua")
        return args.argv()


def script_source(name: str) -> str:
    """What runs: key names, lib.lua, the codec's ARGV binding, then the script."""
    codec = CODECS[name]
    return f"{LUA_PRELUDE}{_read('lib')}\n{lua_binding(codec)}{_read(name, codec.lua_package)}"


class Scripts:
    """Every script, by name (`scripts.append`), one per codec.

    Built on first use, so a codec declared outside the store (the legacy import's)
    is found even when it was imported after the store was made.
    """

    def __init__(self) -> None:
        self._built: dict[str, Script] = {}

    def script(self, name: str) -> Script:
        built = self._built.get(name)
        if built is None:
            if name not in CODECS:
                raise AttributeError(f"no script {name}.lua has a declared codec")
            built = self._built[name] = Script(name, script_source(name))
        return built

    @property
    def by_name(self) -> dict[str, Script]:
        """Every script declared so far (for preloading and for the tests)."""
        return {name: self.script(name) for name in sorted(CODECS)}

    def __getattr__(self, name: str) -> Script:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.script(name)


@cache
def load_scripts() -> Scripts:
    return Scripts()
