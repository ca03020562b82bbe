"""A background loop ends when cancelled even if an await swallowed the cancellation
(store/cancellation.py): the cleanup and the watcher-lease loops check after each error."""

from __future__ import annotations

import asyncio

import pytest

from session_service.store.cancellation import raise_if_cancelled


async def _loop_that_survives_errors(turns: list[int]) -> None:
    """As the cleanup loop: an await that turns a cancellation into an error, caught."""
    while True:
        raise_if_cancelled()
        turns.append(1)
        try:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                raise TimeoutError from None  # what a timed-out read may make of it
        except Exception:
            raise_if_cancelled()


async def test_a_cancelled_loop_ends_though_an_await_swallowed_the_cancellation() -> None:
    turns: list[int] = []
    task = asyncio.create_task(_loop_that_survives_errors(turns))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    assert turns == [1]


async def test_nothing_is_raised_without_a_cancellation() -> None:
    raise_if_cancelled()
