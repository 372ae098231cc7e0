"""The delaying proxy of bench/relay_throughput.py (bench/delay_proxy.py), on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from delay_proxy import DelayProxy  # noqa: E402

RTT = 0.4
SLACK = 0.15  # scheduling on a busy 2-core machine; below half the round trip, so a delay
# applied twice (or not at all) still fails


class Recorder:
    """An upstream that says hello first, notes when each chunk arrived, and echoes it back."""

    def __init__(self):
        self.arrivals: list[tuple[float, bytes]] = []

    async def handle(self, reader, writer):
        writer.write(b"hello\n")
        while data := await reader.read(65536):
            self.arrivals.append((time.monotonic(), data))
            writer.write(data)
            await writer.drain()
        writer.close()


async def through_proxy(scenario, rtt: float = RTT):
    recorder = Recorder()
    upstream = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    proxy = DelayProxy(("127.0.0.1", upstream.sockets[0].getsockname()[1]), rtt)
    port = await proxy.start()
    try:
        return await scenario(port, recorder), proxy.counts
    finally:
        await proxy.close()
        upstream.close()


def test_each_way_waits_half_a_round_trip_and_the_handshake_one_and_a_half():
    async def scenario(port, recorder):
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readline() == b"hello\n"
        banner = time.monotonic() - started
        sent = time.monotonic()
        writer.write(b"ping\n")
        assert await reader.readline() == b"ping\n"
        back = time.monotonic()
        writer.close()
        return banner, recorder.arrivals[0][0] - sent, back - recorder.arrivals[0][0]

    (banner, there, back), counts = asyncio.run(through_proxy(scenario))
    assert 2 * RTT <= banner < 2 * RTT + SLACK
    assert RTT / 2 <= there < RTT / 2 + SLACK
    assert RTT / 2 - 0.005 <= back < RTT / 2 + SLACK
    assert counts.connections == 1


def test_bytes_arrive_intact_and_in_order():
    payload = os.urandom(3_000_000)

    async def scenario(port, recorder):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()

        async def send():
            for at in range(0, len(payload), 50_000):
                writer.write(payload[at:at + 50_000])
                await writer.drain()
            writer.write_eof()

        sending = asyncio.create_task(send())
        echoed = await reader.read(-1)  # until the upstream closes after our EOF
        await sending
        return echoed

    echoed, counts = asyncio.run(through_proxy(scenario, rtt=0.02))
    assert echoed == payload
    assert counts.bytes == len(payload) * 2 + len(b"hello\n")


def test_delays_do_not_add_up_when_chunks_follow_each_other():
    async def scenario(port, recorder):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        sent = []
        for n in range(5):
            sent.append(time.monotonic())
            writer.write(b"%d\n" % n)
            await writer.drain()
            await asyncio.sleep(0.03)
        for _ in range(5):
            await reader.readline()
        writer.close()
        return [arrived - at for (arrived, _), at in zip(recorder.arrivals, sent)]

    delays, _ = asyncio.run(through_proxy(scenario))
    assert len(delays) == 5
    assert all(RTT / 2 <= d < RTT / 2 + SLACK for d in delays), delays
