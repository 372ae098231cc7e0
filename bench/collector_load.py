"""Load on the collector: 1,000 simulated hosts posting real signed reports.

Starts `mailagent collector serve` as its own process (a real uvicorn server on 127.0.0.1),
once on SQLite and once on a throwaway PostgreSQL server, registers 1,000 hosts with real
Ed25519 keys, and posts reports signed in advance (signing is the agents' work, not the
collector's, so it is kept out of the timed part). Per database:

  * saturation: CONCURRENCY keep-alive connections posting back to back -> the most reports/s,
    and the collector's CPU time per report (its processes, from /proc);
  * paced: reports sent at fixed rates (167/s: 10,000 hosts every minute; 1,000/s; the
    2,000/s target) on a schedule (open loop) -> latency measured from when each request was
    due, so queueing delay is counted.

Prints reports/s and p50/p99 latency side by side, and the ratios against the targets
(>= 2,000 reports/s, p99 < 50 ms). Usage: .venv/bin/python bench/collector_load.py [--quick]
[--databases sqlite]

The load generator shares the cores with the collector, so it is kept cheap and measured:
requests are signed and rendered to raw HTTP bytes before timing starts, sent over keep-alive
connections (opened a little apart so every worker process gets its share) from one asyncio
loop (uvloop when installed), and its own CPU time per report is printed beside the
collector's; it stays a small fraction of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "collector"))
from pgserver import TempPostgres, free_port  # noqa: E402

from mailagent import signing  # noqa: E402
from mailagent.report import example_report  # noqa: E402

HOSTS = 1000
TARGET_RATE, TARGET_P99_MS = 2000, 50.0
TOKEN = "bench-registration-token-0123456789"
READ_TOKEN = "bench-read-token-0123456789abcdef"


def make_requests(folder: Path, per_host: int) -> tuple[list, list[bytes]]:
    """Keys for every host and the signed requests, round-robin over hosts (raw HTTP bytes)."""
    keys = [signing.generate_key(folder / f"h{i}.key") for i in range(HOSTS)]
    requests = []
    for round_ in range(per_host):
        for i, key in enumerate(keys):
            host = f"host{i:04d}.fleet.example"
            body = example_report(host).to_wire()
            headers = signing.sign_request(key, host, body)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            requests.append((f"POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\n"
                             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                             f"{head}\r\n").encode() + body)
    return keys, requests


class Collector:
    """`mailagent collector serve` in a child process."""

    def __init__(self, database_url: str, workers: int):
        self.port = free_port()
        env = {**os.environ, "MAILAGENT_COLLECTOR_REGISTRATION_TOKEN": TOKEN,
               "MAILAGENT_COLLECTOR_READ_TOKEN": READ_TOKEN,
               "MAILAGENT_COLLECTOR_WORKERS": str(workers),
               "MAILAGENT_COLLECTOR_EVALUATE_INTERVAL_SECONDS": "15"}
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv/bin/mailagent"), "collector", "serve", "--listen",
             f"127.0.0.1:{self.port}", "--database", database_url],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("collector did not start: " + self.proc.stderr.read().decode()[-2000:])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the collector and its worker processes."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if stat.parent.name == str(self.proc.pid) or fields[1] == str(self.proc.pid):
                total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def _exchange(reader, writer, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")  # one await per response head, not per line
    at = head.lower().find(b"content-length:")
    length = int(head[at + 15:head.index(b"\r\n", at)]) if at >= 0 else 0
    await reader.readexactly(length)
    return int(head.split(None, 2)[1])


async def _connect(port: int, count: int) -> list:
    """`count` keep-alive connections, opened a millisecond apart: opened all at once, the
    first worker process to wake accepts nearly all of them and the others sit idle."""
    conns = []
    for _ in range(count):
        conns.append(await asyncio.open_connection("127.0.0.1", port))
        await asyncio.sleep(0.001)
    return conns


async def saturate(port: int, requests: list[bytes], concurrency: int) -> dict:
    """Back-to-back requests on `concurrency` connections; latency per request."""
    latencies, statuses = [], {}
    queue = iter(requests)
    conns = await _connect(port, concurrency)

    async def worker(reader, writer):
        for request in queue:
            t = time.perf_counter()
            status = await _exchange(reader, writer, request)
            latencies.append(time.perf_counter() - t)
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(*conn) for conn in conns))
    result = _summary(latencies, statuses, time.perf_counter() - start)
    result["generator_cpu_ms"] = (time.process_time() - cpu) / result["n"] * 1000
    return result


async def paced(port: int, requests: list[bytes], rate: float, connections: int) -> dict:
    """Open loop: request k is due at k/rate; latency counts from when it was due.

    Each request's task is started when it falls due (all of them started up front cost the
    generator over 100 ms at 2,000/s, which showed up as the collector's latency)."""
    latencies, statuses = [], {}
    pool: asyncio.Queue = asyncio.Queue()
    for conn in await _connect(port, connections):
        pool.put_nowait(conn)

    async def one(due: float, request: bytes):
        conn = await pool.get()
        status = await _exchange(*conn, request)
        latencies.append(time.perf_counter() - due)
        statuses[status] = statuses.get(status, 0) + 1
        pool.put_nowait(conn)

    start, tasks = time.perf_counter(), []
    for k, request in enumerate(requests):
        due = start + k / rate
        ahead = due - time.perf_counter()
        if ahead > 0.001:  # otherwise start it now, with the others that fell due meanwhile
            await asyncio.sleep(ahead)
        tasks.append(asyncio.create_task(one(due, request)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    return _summary(latencies, statuses, elapsed)


def _summary(latencies: list[float], statuses: dict, elapsed: float) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"rate": len(latencies) / elapsed, "p50": pick(0.50), "p99": pick(0.99),
            "max": ordered[-1] * 1000, "mean": statistics.fmean(ordered) * 1000,
            "n": len(latencies), "statuses": statuses}


def _run(coro):
    """Run the load generator on uvloop when installed (it leaves more CPU to the server)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_one(name: str, database_url: str, keys, requests, args) -> dict:
    collector = Collector(database_url, args.workers)
    try:
        with httpx.Client(base_url=collector.url) as client:
            for i, key in enumerate(keys):
                client.post("/api/v1/hosts/register", headers={"Authorization": f"Bearer {TOKEN}"},
                            json={"host": f"host{i:04d}.fleet.example",
                                  "public_key": signing.public_key_text(key)}).raise_for_status()
        unused = iter(requests)
        cpu = collector.cpu_seconds()
        sat = _run(saturate(collector.port, _take(unused, args.saturation_reports),
                            args.concurrency))
        sat["cpu_ms"] = (collector.cpu_seconds() - cpu) / sat["n"] * 1000
        paced_runs = {}
        for rate in args.rates:
            batch = _take(unused, int(rate * args.paced_seconds))
            paced_runs[rate] = _run(paced(collector.port, batch, rate, args.connections))
        with httpx.Client(base_url=collector.url) as client:
            metrics = client.get("/metrics",
                                 headers={"Authorization": f"Bearer {READ_TOKEN}"}).text
    finally:
        collector.stop()
    batches = next((line.split()[-1] for line in metrics.splitlines()
                    if line.startswith("mailagent_collector_ingest_batches_total")), "?")
    total = sat["n"] + sum(r["n"] for r in paced_runs.values())
    print(f"  {name}: done ({total} reports, {batches} write batches)", flush=True)
    return {"saturation": sat, "paced": paced_runs}


def _take(it, n: int) -> list[bytes]:
    taken = [r for _, r in zip(range(n), it)]
    if len(taken) < n:
        raise SystemExit("not enough prepared reports: raise --per-host")
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-host", type=int, default=14, help="reports per host (default 14)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--saturation-reports", type=int, default=4000)
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")],
                        default=[167.0, 1000.0, float(TARGET_RATE)],
                        help="paced rates, comma-separated (167/s = 10,000 hosts every minute)")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="collector processes (default 2)")
    parser.add_argument("--quick", action="store_true", help="fewer reports: 1,000/s at most")
    parser.add_argument("--databases", type=lambda v: v.split(","),
                        default=["sqlite", "postgresql"], help="comma-separated (default both)")
    args = parser.parse_args()
    if args.quick:
        args.saturation_reports, args.rates, args.paced_seconds = 2000, [167.0, 1000.0], 2.0
    per_host = -(-(args.saturation_reports + int(sum(args.rates) * args.paced_seconds)) // HOSTS)
    per_host = max(per_host, 1 if args.quick else args.per_host)
    folder = Path(tempfile.mkdtemp(prefix="mailagent-bench-"))
    t = time.perf_counter()
    keys, requests = make_requests(folder, per_host)
    print(f"{HOSTS} hosts, {len(requests)} signed reports prepared in "
          f"{time.perf_counter() - t:.1f} s; {os.cpu_count()} cores; collector workers: "
          f"{args.workers}", flush=True)
    results = {}
    try:
        if "sqlite" in args.databases:
            results["SQLite (WAL)"] = run_one("sqlite", f"sqlite:///{folder}/bench.db", keys,
                                              requests, args)
        if "postgresql" in args.databases:
            pg = TempPostgres(durable=True).start()
            try:
                results["PostgreSQL"] = run_one("postgresql", pg.create_database("bench"), keys,
                                                requests, args)
            finally:
                pg.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report(results, args)
    return 0


def report(results: dict, args) -> None:
    names = list(results)
    rows = [(f"saturation ({args.concurrency} conns): reports/s", lambda r: r["saturation"]["rate"], "{:.0f}"),
            ("saturation: p50 ms", lambda r: r["saturation"]["p50"], "{:.1f}"),
            ("saturation: p99 ms", lambda r: r["saturation"]["p99"], "{:.1f}"),
            ("collector CPU ms per report", lambda r: r["saturation"]["cpu_ms"], "{:.2f}"),
            ("load generator CPU ms per report", lambda r: r["saturation"]["generator_cpu_ms"],
             "{:.3f}")]
    for rate in args.rates:
        rows += [(f"paced {rate:.0f}/s: achieved/s", lambda r, q=rate: r["paced"][q]["rate"], "{:.0f}"),
                 (f"paced {rate:.0f}/s: p50 ms", lambda r, q=rate: r["paced"][q]["p50"], "{:.1f}"),
                 (f"paced {rate:.0f}/s: p99 ms", lambda r, q=rate: r["paced"][q]["p99"], "{:.1f}")]
    print(f"\n{'':36}" + "".join(f"{n:>16}" for n in names))
    for label, get, fmt in rows:
        print(f"{label:36}" + "".join(f"{fmt.format(get(results[n])):>16}" for n in names))
    for n in names:
        statuses = Counter(results[n]["saturation"]["statuses"])
        for run in results[n]["paced"].values():
            statuses.update(run["statuses"])
        top = max(args.rates)
        print(f"{n}: HTTP statuses {dict(sorted(statuses.items()))}; saturation "
              f"{results[n]['saturation']['rate'] / TARGET_RATE:.2f}x the {TARGET_RATE}/s target; "
              f"p99 at {top:.0f}/s {results[n]['paced'][top]['p99'] / TARGET_P99_MS:.2f}x the "
              f"{TARGET_P99_MS:.0f} ms limit; one core at its CPU cost: "
              f"{1000 / results[n]['saturation']['cpu_ms']:.0f} reports/s")
    if len(names) == 2:
        a, b = (results[n]["saturation"]["rate"] for n in names)
        print(f"PostgreSQL / SQLite throughput ratio: {b / a:.2f}")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (other "
          "work on the machine lowers these figures)")


if __name__ == "__main__":
    sys.exit(main())
