"""A delaying TCP proxy: the internet's round trip between a client and a server on loopback.

Every chunk read from either side is written to the other half a round trip after it arrived,
however much else is in flight (a link with latency, not a slow one), and a new connection is
handed to the server only after 1.5 round trips: SYN, SYN-ACK and the client's ACK. So TCP and
TLS handshakes and each SMTP exchange cost what they cost across the internet. User space and
asyncio, because this kernel has no `netem`.

    python bench/delay_proxy.py --upstream 127.0.0.1:2587 [--rtt-ms 40] [--listen-port 0]

prints `listening <port>` once it accepts, and answers each `stats` line on stdin with one JSON
line {"connections", "chunks", "bytes"}; SIGTERM or stdin's end stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

HANDSHAKE_RTTS = 1.5  # the server sees a connection after SYN, SYN-ACK and ACK
QUEUE_CHUNKS = 256  # chunks in flight per direction before reading that side pauses
EOF = b""


@dataclass
class Counts:
    """What went through the proxy since it started."""

    connections: int = 0
    chunks: int = 0
    bytes: int = 0


class DelayProxy:
    """Listen on `listen`, forward each connection to `upstream` across an emulated round trip."""

    def __init__(self, upstream: tuple[str, int], rtt: float, listen: tuple[str, int] = ("127.0.0.1", 0)):
        self.upstream, self.rtt, self.listen = upstream, rtt, listen
        self.counts = Counts()
        self._server: asyncio.AbstractServer | None = None
        self._live: set[asyncio.Task] = set()  # asyncio keeps only weak references to tasks

    async def start(self) -> int:
        """Start listening; the port really used."""
        self._server = await asyncio.start_server(self._serve, *self.listen)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._live):
            task.cancel()
        await asyncio.gather(*self._live, return_exceptions=True)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.counts.connections += 1
        self._keep(asyncio.current_task())
        loop = asyncio.get_running_loop()
        opens_at = loop.time() + HANDSHAKE_RTTS * self.rtt
        to_server: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
        tasks = [self._keep(asyncio.create_task(self._read(client_r, to_server)))]  # the client may speak first
        server_w = None
        try:
            await asyncio.sleep(max(0.0, opens_at - loop.time()))
            server_r, server_w = await asyncio.open_connection(*self.upstream)
            to_client: asyncio.Queue = asyncio.Queue(QUEUE_CHUNKS)
            tasks += [self._keep(asyncio.create_task(step)) for step in (
                self._write(to_server, server_w), self._read(server_r, to_client),
                self._write(to_client, client_w))]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        except OSError:
            pass  # the server refused: the client is closed below
        except asyncio.CancelledError:
            pass  # the proxy is stopping: asyncio.run cancels what is still open
        finally:
            for task in tasks:
                task.cancel()
                if task.done() and not task.cancelled():
                    task.exception()  # a reset on one side ends both; nothing to report
            for writer in (client_w, server_w):
                if writer:
                    writer.close()

    def _keep(self, task: asyncio.Task) -> asyncio.Task:
        self._live.add(task)
        task.add_done_callback(self._live.discard)
        return task

    async def _read(self, reader: asyncio.StreamReader, queue: asyncio.Queue) -> None:
        """Stamp each chunk with the time it is due on the other side; EOF travels the same way."""
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + self.rtt / 2, data))
            if data == EOF:
                return
            self.counts.chunks += 1
            self.counts.bytes += len(data)

    @staticmethod
    async def _write(queue: asyncio.Queue, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if data == EOF:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()


class ProxyProcess:
    """This file run as its own process (so the bench's threads do not slow it) in front of
    127.0.0.1:`upstream`; `port` is where it listens."""

    def __init__(self, upstream: int, rtt_ms: float):
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--upstream", f"127.0.0.1:{upstream}",
             "--rtt-ms", str(rtt_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = int(self.process.stdout.readline().split()[1])

    def stats(self) -> dict:
        """{"connections", "chunks", "bytes"} so far."""
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def parse_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


async def serve(args: argparse.Namespace) -> None:
    proxy = DelayProxy(parse_address(args.upstream), args.rtt_ms / 1000, ("127.0.0.1", args.listen_port))
    port = await proxy.start()
    print(f"listening {port}", flush=True)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)

    async def answer() -> None:
        while line := await stdin.readline():
            if line.strip() == b"stats":
                print(json.dumps(asdict(proxy.counts)), flush=True)
        stopping.set()

    answering = asyncio.create_task(answer())
    await stopping.wait()
    answering.cancel()
    await proxy.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT to forward to (loopback)")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="round trip time to emulate")
    parser.add_argument("--listen-port", type=int, default=0, help="127.0.0.1 port; 0 picks a free one")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
