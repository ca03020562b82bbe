"""Lua scripts, loaded from `lua/` and prefixed with the key names and helpers.

Each script runs by EVALSHA; a server that lost its script cache (restart,
failover) gets the source again once. User data only ever travels in ARGV.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from session_service.store.keys import LUA_PRELUDE

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
)


def _read(name: str) -> str:
    return resources.files("session_service.store").joinpath("lua", f"{name}.lua").read_text()


class Script:
    __slots__ = ("name", "sha", "source")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, client: Any, keys: list[str], args: list[str | int]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


class Scripts:
    """All scripts of the store, by name."""

    def __init__(self) -> None:
        lib = LUA_PRELUDE + _read("lib")
        self.by_name = {name: Script(name, f"{lib}\n{_read(name)}") for name in _NAMES}
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


@cache
def load_scripts() -> Scripts:
    return Scripts()
