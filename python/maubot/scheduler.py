"""`BasicScheduler`, the timers of a plugin instance (`self.sched`)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Awaitable, Callable

__all__ = ["BasicScheduler"]


class BasicScheduler:
    """Timers of a plugin instance (`self.sched`); all cancelled when the instance stops."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._tasks: set[asyncio.Task] = set()

    def _keep(self, task: asyncio.Task) -> asyncio.Task:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _call(self, awaitable: Awaitable[Any], catch_errors: bool) -> None:
        if not catch_errors:
            await awaitable
            return
        try:
            await awaitable
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("Error in scheduled task")

    def run_periodically(
        self,
        period: float,
        func: Callable[[], Awaitable[Any]],
        run_task_in_background: bool = False,
        catch_errors: bool = True,
    ) -> asyncio.Task:
        """Call `func()` every `period` seconds, the first time after one period.

        With `run_task_in_background`, a slow call does not delay the next one.
        """

        async def repeat() -> None:
            while True:
                await asyncio.sleep(period)
                if run_task_in_background:
                    self._keep(asyncio.create_task(self._call(func(), catch_errors)))
                else:
                    await self._call(func(), catch_errors)

        return self._keep(asyncio.create_task(repeat()))

    def run_later(
        self, delay: float, coro: Awaitable[Any], catch_errors: bool = True
    ) -> asyncio.Task:
        """Await `coro` after `delay` seconds."""

        async def later() -> None:
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                if inspect.iscoroutine(coro):
                    coro.close()  # never started: no "was never awaited" warning
                raise
            await self._call(coro, catch_errors)

        return self._keep(asyncio.create_task(later()))

    def stop(self) -> None:
        """Cancel every timer."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
