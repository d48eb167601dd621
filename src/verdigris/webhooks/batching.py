"""Group many concurrent small database actions into one.

Every webhook delivery needs a read (the instance's next notification) and a write (it was
delivered). Done one by one they serialise on the database connection; done through a
:class:`Coalescer`, the requests that arrive while one batch runs go together in the next one,
so sixty parallel deliveries cost two round trips instead of sixty, and a lone request still
runs at once (no timer, no added wait).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")


class Coalescer(Generic[K, R]):
    def __init__(self, run_batch: Callable[[list[K]], Awaitable[list[R]]], max_batch: int = 500) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: list[tuple[K, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __call__(self, request: K) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((request, fut))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                try:
                    results = await self._run_batch([request for request, _ in batch])
                except asyncio.CancelledError:
                    for _, fut in batch:
                        fut.cancel()
                    raise
                except Exception as exc:  # every waiter learns the batch failed
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._task = None
