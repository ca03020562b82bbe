"""What a request costs Redis: commands and CPU time, from INFO before and after a run.

Redis counts a command called from a Lua script both on its own line of
``INFO commandstats`` and inside the script's time. The hot operations that run
a script send nothing else, so when a run's delta holds script calls, the
script calls are the request's commands ("top") and every other command counted
is taken as having run inside them ("in scripts"); the CPU time is the scripts'
own (which includes what they called). ``used_cpu_*_main_thread`` from
``INFO cpu`` adds what commandstats leaves out: reading, parsing and replying.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# What the bench itself sends while measuring; never part of a request's cost.
_OURS = frozenset(
    {
        "info", "config|set", "config|get", "config|resetstat", "slowlog|get", "slowlog|reset",
        "slowlog|len", "client|setinfo", "client|list", "hello", "ping", "script|load",
        "flushall", "select", "command|docs", "command", "bgrewriteaof",
    }
)  # fmt: skip
_SCRIPTS = frozenset({"evalsha", "eval", "evalsha_ro", "eval_ro", "fcall", "fcall_ro"})


@dataclass
class Snapshot:
    stats: dict[str, tuple[int, int]]  # command -> (calls, usec)
    cpu_seconds: float


async def snapshot(client: Any) -> Snapshot:
    info = await client.info("commandstats")
    stats = {}
    for key, value in info.items():
        name = key.removeprefix("cmdstat_")
        if name not in _OURS:
            stats[name] = (int(value["calls"]), int(value["usec"]))
    cpu = await client.info("cpu")
    main = float(cpu.get("used_cpu_user_main_thread", cpu["used_cpu_user"])) + float(
        cpu.get("used_cpu_sys_main_thread", cpu["used_cpu_sys"])
    )
    return Snapshot(stats, main)


@dataclass
class Cost:
    requests: int
    top: float  # commands the service sent, per request
    nested: float  # commands run inside its scripts, per request
    usec: float  # commandstats time per request
    cpu_usec: float  # Redis main-thread CPU per request
    commands: str  # the commands seen, most frequent first

    def describe(self) -> str:
        inside = f" + {self.nested:.1f} in scripts" if self.nested else ""
        return (
            f"{self.top:.2f} cmds/req{inside}, {self.usec:.1f} us/req "
            f"(main thread {self.cpu_usec:.1f} us/req) [{self.commands}]"
        )


def cost_between(before: Snapshot, after: Snapshot, requests: int) -> Cost:
    delta: dict[str, tuple[int, int]] = {}
    for name, (calls, usec) in after.stats.items():
        c0, u0 = before.stats.get(name, (0, 0))
        if calls > c0:
            delta[name] = (calls - c0, usec - u0)
    n = max(1, requests)
    scripts = {k: v for k, v in delta.items() if k in _SCRIPTS}
    if scripts:
        top = sum(c for c, _ in scripts.values())
        nested = sum(c for k, (c, _) in delta.items() if k not in _SCRIPTS)
        usec = sum(u for _, u in scripts.values())
    else:
        top = sum(c for c, _ in delta.values())
        nested = 0
        usec = sum(u for _, u in delta.values())
    ranked = sorted(delta.items(), key=lambda kv: -kv[1][0])
    commands = " ".join(f"{k} {c / n:.2g}" for k, (c, _) in ranked[:8])
    return Cost(
        requests=requests,
        top=top / n,
        nested=nested / n,
        usec=usec / n,
        cpu_usec=(after.cpu_seconds - before.cpu_seconds) * 1e6 / n,
        commands=commands,
    )
