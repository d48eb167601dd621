"""Group commit: small write transactions that arrive together share one commit.

Accepting a message is one INSERT, and its ``BEGIN``/``COMMIT`` (plus the transaction's set-up) cost
more than the INSERT itself. :meth:`GroupCommit.run` queues a piece of work (a coroutine function
taking the transaction); a writer task takes every piece waiting at that moment and runs them, in
the order they came, in one transaction. Each caller resumes only after the commit that holds its
writes, so an answer given after :meth:`run` returns is as durable as before (a 200 survives
``kill -9``), and after-commit actions (wake-ups) run after that commit as usual.

While one batch commits, the next one gathers: under load the batches grow by themselves, and
when idle a piece runs at once (a batch of one). If a batch fails, nothing of it was committed and
each of its pieces runs again in a transaction of its own, so one bad row gets its own error and
its batch-mates are committed as if alone. A piece may therefore run twice: it must do nothing
outside the transaction it is given (after-commit actions are discarded with a rolled-back one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

import structlog

T = TypeVar("T")
R = TypeVar("R")

log = structlog.get_logger("verdigris.store")

# A batch stays bounded so that one commit never holds a long tail of callers.
MAX_BATCH = 512


class GroupCommit(Generic[T]):
    """Runs queued work in shared transactions opened by ``open_tx``.

    ``lanes``: how many batches may be in flight at once (1 for SQLite, which has one writer).
    0: no grouping, each piece runs at once in a transaction of its own in the caller's task
    (PostgreSQL for now: there each statement of a batch is a round trip its batch-mates wait
    for, and B1a measured 0.6-0.8× the ungrouped figure; docs/performance.md).
    """

    def __init__(self, open_tx: Callable[[], AbstractAsyncContextManager[T]], lanes: int = 1) -> None:
        self._open_tx = open_tx
        self._lanes = lanes
        self._busy = 0
        self._waiting: list[tuple[Callable[[T], Awaitable[Any]], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # the loop keeps only weak references
        self.batches = 0  # how many transactions ran (for tests and profiling)

    async def run(self, work: Callable[[T], Awaitable[R]]) -> R:
        """Run ``work(tx)`` in a transaction shared with the other work waiting now; returns its
        result once that transaction has committed (or raises its own error)."""
        if not self._lanes:
            self.batches += 1
            async with self._open_tx() as tx:
                return await work(tx)
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((work, fut))
        if self._busy < self._lanes:
            self._busy += 1
            task = asyncio.ensure_future(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await fut

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[:MAX_BATCH]
                del self._waiting[:MAX_BATCH]
                batch = [(work, fut) for work, fut in batch if not fut.done()]  # callers gone
                if batch:
                    await self._commit(batch)
        finally:
            self._busy -= 1

    async def _commit(self, batch: list[tuple[Callable[[T], Awaitable[Any]], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._together(batch)
        except asyncio.CancelledError:
            for _, fut in batch:
                _settle(fut, cancel=True)
            raise
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            log.info("group commit: batch failed, running its pieces one by one", size=len(batch))
            for work, fut in batch:
                await self._alone(work, fut)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            _settle(fut, result)

    async def _together(
        self, batch: list[tuple[Callable[[T], Awaitable[Any]], asyncio.Future[Any]]]
    ) -> list[Any]:
        results: list[Any] = []
        self.batches += 1
        async with self._open_tx() as tx:
            for work, _ in batch:
                results.append(await work(tx))
        return results

    async def _alone(self, work: Callable[[T], Awaitable[Any]], fut: asyncio.Future[Any]) -> None:
        try:
            self.batches += 1
            async with self._open_tx() as tx:
                result = await work(tx)
        except asyncio.CancelledError:
            _settle(fut, cancel=True)
            raise
        except Exception as exc:
            _settle(fut, error=exc)
            return
        _settle(fut, result)


def _settle(
    fut: asyncio.Future[Any], result: Any = None, error: Exception | None = None, cancel: bool = False
) -> None:
    """Answer a waiting caller (unless it is gone)."""
    if fut.done():
        return
    if cancel:
        fut.cancel()
    elif error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
