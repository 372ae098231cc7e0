"""How much the delaying proxy carries at 0 ms delay: is it what sets bench/relay_throughput.py's pace?

`capacity()` starts a bench/delay_proxy.py process with no delay in front of an in-process echo
server and measures (the echo server and the clients share this process, so the proxy can do at
least this much):

* small exchanges: `parallel` connections each sending 100 bytes and waiting for them back, the
  shape of an SMTP conversation; two proxy chunks per exchange;
* bulk: one connection carrying `bulk_mb` megabytes one way.

Returns {"chunks_per_s", "mb_per_s", "parallel"}.
"""

from __future__ import annotations

import asyncio
import time

from delay_proxy import ProxyProcess


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _discard(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    total = 0
    while data := await reader.read(1 << 20):
        total += len(data)
    writer.write(b"%d\n" % total)
    await writer.drain()
    writer.close()


async def _exchanges(port: int, seconds: float) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done, line, deadline = 0, b"x" * 99 + b"\n", time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.write(line)
        await reader.readexactly(len(line))
        done += 1
    writer.close()
    return done


async def _bulk(port: int, megabytes: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk, started = b"x" * (1 << 20), time.monotonic()
    for _ in range(megabytes):
        writer.write(chunk)
        await writer.drain()
    writer.write_eof()
    assert int(await reader.readline()) == megabytes << 20
    return megabytes / (time.monotonic() - started)


async def _measure(parallel: int, seconds: float, bulk_mb: int) -> dict:
    results = {"parallel": parallel}
    for handler in (_echo, _discard):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        proxy = await asyncio.to_thread(ProxyProcess, server.sockets[0].getsockname()[1], 0)
        try:
            if handler is _echo:
                counts = await asyncio.gather(*(_exchanges(proxy.port, seconds) for _ in range(parallel)))
                results["chunks_per_s"] = 2 * sum(counts) / seconds
            else:
                results["mb_per_s"] = await _bulk(proxy.port, bulk_mb)
        finally:
            await asyncio.to_thread(proxy.stop)
            server.close()
    return results


def capacity(parallel: int = 20, seconds: float = 3.0, bulk_mb: int = 200) -> dict:
    return asyncio.run(_measure(parallel, seconds, bulk_mb))
