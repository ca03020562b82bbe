"""The stall check itself (`tests/store/stalls.py`) can fail: a script that keeps Redis's
main thread busy for 30 ms of CPU is caught, however busy the machine is."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tests.store.stalls import BOUND_MS, stall_free

#: Spins until Redis's process has used ARGV[1] seconds of CPU (os.clock, not the wall
#: clock: on a loaded machine 30 ms of wall time can be 5 ms of CPU).
SPIN = """
local started = os.clock()
while os.clock() - started < tonumber(ARGV[1]) do end
return 1
"""


async def test_a_script_that_blocks_for_30_ms_of_cpu_is_caught(
    redis: Redis, redis_url: str
) -> None:
    async def nothing() -> None:
        return None

    async def spin(_: None) -> None:
        for _ in range(3):
            await redis.eval(SPIN, 0, str(3 * BOUND_MS / 1000))

    with pytest.raises(AssertionError, match="ms of CPU") as caught:
        await stall_free(redis, redis_url, nothing, spin)
    print(caught.value)


async def test_a_script_of_a_millisecond_passes(redis: Redis, redis_url: str) -> None:
    async def nothing() -> None:
        return None

    async def spin(_: None) -> int:
        for _ in range(20):
            await redis.eval(SPIN, 0, "0.001")
        return 20

    assert await stall_free(redis, redis_url, nothing, spin) == (None, 20)
