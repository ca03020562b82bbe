"""Lua scripts, loaded from `lua/` and prefixed with the key names and helpers.

Each script runs by EVALSHA; a server that lost its script cache (restart,
failover) gets the source again once. User data only ever travels in ARGV, laid
out by the script's codec (`protocol.py`) and read back by the binding
generated from it.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from session_service.store.keys import LUA_PRELUDE
from session_service.store.protocol import CODECS, ScriptArgs, lua_binding

_NAMES = (
    "create",
    "append",
    "update",
    "archive",
    "restore",
    "heartbeat",
    "delete",
    "list",
    "search",
    "link_case",
    "unlink_case",
    "clear_context",
    "prune",
    "erase",
    "statistics",
    "delete_all",
    "import_stage",
    "import_commit",
    "erase_strays",
    "window",
    "summarize",
    "copy",
    "fork_begin",
    "fork",
    "rewind",
    "rewind_swap",
)


def _read(name: str) -> str:
    return resources.files("session_service.store").joinpath("lua", f"{name}.lua").read_text()


class Script:
    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(
        self, client: Any, keys: list[str], args: ScriptArgs | list[str | int]
    ) -> Any:
        argv = self.argv(args)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *argv)

    def argv(self, args: ScriptArgs | list[str | int]) -> list[str | int]:
        """The ARGV of a call: a codec's layout (checked to be this script's)."""
        if isinstance(args, ScriptArgs):
            if args.script != self.name:
                raise TypeError(f"{type(args).__name__} is not the codec of {self.name}.lua")
            return args.argv()
        if self.name in CODECS:
            raise TypeError(f"{self.name}.lua takes {CODECS[self.name].__name__}")
        return args


def script_source(name: str) -> str:
    """What runs: key names, lib.lua, the codec's ARGV binding, then the script."""
    binding = lua_binding(CODECS[name]) if name in CODECS else ""
    return f"{LUA_PRELUDE}{_read('lib')}\n{binding}{_read(name)}"


class Scripts:
    """All scripts of the store, by name."""

    def __init__(self) -> None:
        self.by_name = {name: Script(name, script_source(name)) for name in _NAMES}
        for name, script in self.by_name.items():
            setattr(self, name, script)

    create: Script
    append: Script
    update: Script
    archive: Script
    restore: Script
    heartbeat: Script
    delete: Script
    list: Script
    search: Script
    link_case: Script
    unlink_case: Script
    clear_context: Script
    prune: Script
    erase: Script
    statistics: Script
    delete_all: Script
    import_stage: Script
    import_commit: Script
    erase_strays: Script
    window: Script
    summarize: Script
    copy: Script
    fork_begin: Script
    fork: Script
    rewind: Script
    rewind_swap: Script


@cache
def load_scripts() -> Scripts:
    return Scripts()
