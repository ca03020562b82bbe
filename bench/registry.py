"""The scenarios of a run, registered by the modules of `bench/scenarios/`.

To add a row for a new endpoint, drop a module into `bench/scenarios/` (it is
imported automatically) with a function like::

    @scenario("head", order=25)
    async def head(ctx: Ctx) -> list[Row]:
        r = await ctx.load("HEAD session", lambda i: http_request("HEAD", ...), cost="head")
        ctx.results["head"] = r          # the bar compares it with get
        return [ctx.row(r)]

`order` places it in the table (create 10, get 20, append 30, pages 50-70,
mixed 80, connection-per-request 90, open loop 100, largest sizes 110, Redis
cost 120, the bar 130). `--only NAME` runs the scenarios whose name contains NAME.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.context import Ctx
    from bench.report import Row

ScenarioFn = Callable[["Ctx"], Awaitable[list["Row"]]]


@dataclass(frozen=True)
class Scenario:
    name: str
    order: int
    fn: ScenarioFn
    always: bool = False  # summaries: run whatever --only says


REGISTRY: dict[str, Scenario] = {}


def scenario(name: str, order: int, always: bool = False) -> Callable[[ScenarioFn], ScenarioFn]:
    def register(fn: ScenarioFn) -> ScenarioFn:
        if name in REGISTRY:
            raise ValueError(f"two scenarios are named {name!r}")
        REGISTRY[name] = Scenario(name, order, fn, always)
        return fn

    return register


def discover() -> list[Scenario]:
    """Every scenario of `bench/scenarios/`, in table order."""
    import bench.scenarios as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return sorted(REGISTRY.values(), key=lambda s: (s.order, s.name))
