"""Background tasks that stop when they are cancelled, whatever redis-py did with it.

redis-py reads under asyncio.timeout, which on Python 3.11 can turn a cancellation that
meets its own deadline into a plain timeout (a None answer, or a TimeoutError that a
loop's `except Exception` takes for a Redis failure): the task then keeps going although
it was cancelled, and a shutdown that awaits it never ends. A loop that survives Redis
errors calls `raise_if_cancelled()` after each one.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelled() -> None:
    """Honour a cancellation of the current task that an await swallowed."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError()
