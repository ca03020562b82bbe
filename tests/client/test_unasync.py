"""The blocking client is written from the asyncio one (clients/python/unasync.py).

These fail when an async module was edited and `make client-sync` was not run.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from fm_session_client import AsyncSessionClient, SessionClient

SCRIPT = Path(__file__).parents[2] / "clients" / "python" / "unasync.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


UNASYNC = _script()


def test_the_blocking_modules_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr


def test_the_rewrite_drops_async_and_swaps_asyncio_names() -> None:
    source = (
        "async def watch(self) -> AsyncIterator[int]:\n"
        '    """`AsyncSessionClient.watch()`: asyncio names in prose stay."""\n'
        "    for event in await self._run(probe):\n"
        "        yield event\n"
        "    async with contextlib.aclosing(self.once()) as once:\n"
        "        async for line in once.aiter_lines():\n"
        "            yield line\n"
        "    await asyncio.sleep(await self.wait())\n"
    )
    assert UNASYNC.unasync(source) == (
        "def watch(self) -> Iterator[int]:\n"
        '    """`SessionClient.watch()`: asyncio names in prose stay."""\n'
        "    yield from self._run(probe)\n"
        "    with contextlib.closing(self.once()) as once:\n"
        "        yield from once.iter_lines()\n"
        "    time.sleep(self.wait())\n"
    )


def test_return_types_are_the_blocking_twins() -> None:
    """Parameters are compared in test_contract.py; here the return types, rewritten."""
    names = [name for name in dir(AsyncSessionClient) if not name.startswith("_")]
    assert len(names) > 35
    for name in names:
        aio = inspect.signature(getattr(AsyncSessionClient, name)).return_annotation
        sync = inspect.signature(getattr(SessionClient, "close" if name == "aclose" else name))
        assert UNASYNC.unasync(str(aio)) == str(sync.return_annotation), name
