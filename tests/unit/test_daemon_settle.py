"""The daemon's last step: calls a stop cut short finish their cleanup before the loop ends."""

from __future__ import annotations

import asyncio

from bitshare.daemon.server import settle


def _run(main_settles: bool) -> list[str]:
    seen: list[str] = []

    async def cleanup_after_stop() -> None:
        try:
            await asyncio.sleep(0.05)  # a handler's detach, a store write in a thread
            seen.append("finished")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = asyncio.ensure_future(cleanup_after_stop())
        await asyncio.sleep(0)
        if main_settles:
            await settle(5.0)
        del task  # held until here: the loop keeps only a weak reference

    asyncio.run(main())
    return seen


def test_a_task_still_unwinding_is_let_finish_rather_than_cancelled() -> None:
    assert _run(main_settles=False) == ["cancelled"]  # what asyncio.run does alone
    assert _run(main_settles=True) == ["finished"]


def test_a_task_that_does_not_finish_in_time_is_left_to_the_loop() -> None:
    seen: list[str] = []

    async def never_ends() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> float:
        task = asyncio.ensure_future(never_ends())
        loop = asyncio.get_running_loop()
        began = loop.time()
        await settle(0.1)
        del task
        return loop.time() - began

    waited = asyncio.run(main())
    assert 0.1 <= waited < 2.0
    assert seen == ["cancelled"]
