"""Group commit: reports arriving together are checked and stored in one transaction.

Requests wait on a future while a writer thread takes everything queued (up to `batch_max`)
and commits it at once (`threads` writers per process: one by default, which makes the
largest batches). Under load this turns hundreds of small transactions into a few large
ones; when idle a batch is one report and adds no delay. A request is answered
only after its batch committed, so 200 always means stored. Past `max_pending` queued reports
new ones are answered 503 at once: agents keep them in their spool and retry later, which
keeps the latency of what is accepted bounded.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from mailagent.collector.batchstore import StorageUnavailable
from mailagent.collector.ingest import Outcome, Submission

log = logging.getLogger("mailagent.collector.writer")
Process = Callable[[list[Submission]], list[Outcome]]
_STOP = None


class BatchWriter:
    """Feeds queued submissions to `process` in batches, on `threads` threads."""

    def __init__(self, process: Process, batch_max: int, max_pending: int = 4096,
                 threads: int = 1):
        self._process = process
        self._batch_max = batch_max
        self._max_pending = max_pending
        self._threads = threads
        self._queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ingest-writer")
        self.batches = 0
        self.largest_batch = 0

    def start(self) -> None:
        """Begin taking submissions (call from the running event loop)."""
        self._queue = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._run(), name=f"ingest-writer-{n}")
                       for n in range(self._threads)]

    def _running(self) -> bool:
        return any(not task.done() for task in self._tasks)

    async def submit(self, sub: Submission) -> Outcome:
        """Queue `sub` and wait until its batch is stored (or refused)."""
        if not self._running():
            return Outcome(503, "unavailable", "collector is not running")
        if self._queue.qsize() >= self._max_pending:
            return Outcome(503, "unavailable", "overloaded; retry later")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((sub, future))
        return await future

    async def stop(self) -> None:
        """Store what was queued before the call, then stop; later submissions get 503."""
        if self._running():
            for _ in self._tasks:
                self._queue.put_nowait(_STOP)
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._queue and not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _STOP and not item[1].done():
                item[1].set_result(Outcome(503, "unavailable", "collector shutting down"))
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while (first := await self._queue.get()) is not _STOP:
            batch, stopping = [first], False
            while len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
            outcomes = await loop.run_in_executor(self._executor, self._safe, [s for s, _ in batch])
            self.batches += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            for (_, future), outcome in zip(batch, outcomes):
                if not future.done():
                    future.set_result(outcome)
            if stopping:
                return

    def _safe(self, subs: list[Submission]) -> list[Outcome]:
        """Run a batch. If the database is unavailable or locked the whole batch is answered
        503 (agents spool and retry); any other failure is retried report by report, so one
        bad report cannot sink the others."""
        try:
            return self._process(subs)
        except StorageUnavailable as exc:
            log.error("storing a batch of %d reports failed: %s", len(subs), exc)
        except Exception:  # noqa: BLE001 - any storage failure must become an answer
            log.exception("storing a batch of %d reports failed", len(subs))
            if len(subs) > 1:
                return [self._safe([sub])[0] for sub in subs]
        return [Outcome(503, "unavailable", "storage failed; retry later") for _ in subs]
