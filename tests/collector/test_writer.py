"""The group-commit writer: batching, per-report isolation of failures, overload, shutdown."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest

from mailagent.collector.batchstore import StorageUnavailable
from mailagent.collector.ingest import Outcome, Submission
from mailagent.collector.writer import BatchWriter

pytestmark = pytest.mark.timeout(60)


def sub(n: int) -> Submission:
    return Submission({}, str(n).encode(), datetime.now(timezone.utc))


def test_concurrent_reports_share_batches():
    sizes = []
    gate = threading.Event()

    def process(batch):
        gate.wait(10)  # hold the first batch so the others queue up behind it
        sizes.append(len(batch))
        return [Outcome(200, "accepted", {"n": s.body.decode()}) for s in batch]

    async def main():
        writer = BatchWriter(process, batch_max=50)
        writer.start()
        tasks = [asyncio.create_task(writer.submit(sub(n))) for n in range(101)]
        await asyncio.sleep(0.2)
        gate.set()
        outcomes = await asyncio.gather(*tasks)
        await writer.stop()
        return outcomes, writer

    outcomes, writer = asyncio.run(main())
    assert [o.detail["n"] for o in outcomes] == [str(n) for n in range(101)]
    assert sum(sizes) == 101 and max(sizes) == 50 and writer.batches == len(sizes) < 101


def test_one_bad_report_does_not_sink_its_batch():
    def process(batch):
        if any(s.body == b"3" for s in batch) and len(batch) > 1:
            raise ValueError("boom")
        if batch[0].body == b"3":
            raise ValueError("this one really is bad")
        return [Outcome(200, "accepted") for _ in batch]

    async def main():
        writer = BatchWriter(process, batch_max=10)
        writer.start()
        outcomes = await asyncio.gather(*(writer.submit(sub(n)) for n in range(6)))
        await writer.stop()
        return outcomes

    statuses = [o.status for o in asyncio.run(main())]
    assert statuses == [200, 200, 200, 503, 200, 200]


def test_database_down_answers_the_batch_503_without_retrying_each():
    calls = []

    def process(batch):
        calls.append(len(batch))
        raise StorageUnavailable("database is locked")

    async def main():
        writer = BatchWriter(process, batch_max=10)
        writer.start()
        gathered = asyncio.gather(*(writer.submit(sub(n)) for n in range(4)))
        outcomes = await gathered
        await writer.stop()
        return outcomes

    assert {o.status for o in asyncio.run(main())} == {503}
    assert sum(calls) == 4  # never split into one-by-one retries


def test_overload_and_shutdown_answer_503():
    gate = threading.Event()

    def process(batch):
        gate.wait(10)
        return [Outcome(200, "accepted") for _ in batch]

    async def main():
        writer = BatchWriter(process, batch_max=1, max_pending=2)
        writer.start()
        first = asyncio.create_task(writer.submit(sub(0)))
        await asyncio.sleep(0.1)  # taken by the writer, which now waits on the gate
        queued = [asyncio.create_task(writer.submit(sub(n))) for n in (1, 2)]
        await asyncio.sleep(0.1)
        refused = await writer.submit(sub(3))
        stopping = asyncio.create_task(writer.stop())
        await asyncio.sleep(0.1)
        gate.set()
        await stopping
        return await first, [await q for q in queued], refused, await writer.submit(sub(4))

    first, queued, refused, after = asyncio.run(main())
    assert first.status == 200
    assert refused.status == 503 and "overloaded" in refused.detail
    assert [q.status for q in queued] == [200, 200]  # queued before stop(): still stored
    assert after.status == 503


def test_several_writer_threads_store_batches_side_by_side():
    lock, active, peak = threading.Lock(), [0], [0]

    def process(batch):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.05)  # a commit's worth of waiting
        with lock:
            active[0] -= 1
        return [Outcome(200, "accepted", {"n": s.body.decode()}) for s in batch]

    async def main():
        writer = BatchWriter(process, batch_max=5, threads=3)
        writer.start()
        outcomes = await asyncio.gather(*(writer.submit(sub(n)) for n in range(60)))
        await writer.stop()
        return outcomes

    outcomes = asyncio.run(main())
    assert [o.detail["n"] for o in outcomes] == [str(n) for n in range(60)]
    assert peak[0] > 1
