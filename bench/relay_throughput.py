"""Relay throughput on real Postfix at native speed: our relay configuration against a baseline.

    sudo .venv/bin/python bench/relay_throughput.py [--messages 2000] [--runs 3] [--rtt-ms 40]
                                                    [--latency-messages 200]

On this host, under a temporary folder: the lab sink (STARTTLS + AUTH) on free loopback ports,
one delaying proxy per configuration in front of it (bench/delay_proxy.py: half the round trip
each way, 1.5 for a TCP handshake), and two private Postfix instances relaying through them
(bench/relay_configs.py): ours, rendered by mailagent.relay.render, and the baseline of a popular
Ansible role. /etc/postfix, the system Postfix and the lab's sink on 2525/2587/2465 are untouched.

Throughput, per run and configuration: N messages are injected into the hold queue, released at
once (`postsuper -H ALL; postqueue -f`), and timed until the sink has recorded every one of
them exactly once (by Message-ID). Connections and TLS handshakes are counted at the sink.
Then the application's view: submit latency with 8 parallel submitters into our local Postfix
(SMTP on loopback, sendmail) against direct STARTTLS + AUTH to the delayed sink. Then the
proxy's own capacity at 0 ms delay, to show it is not what sets the pace.

Targets (issue 15): ours/baseline throughput >= 3x; local submit p50 <= 1/5 of direct. Needs
root (it starts Postfix instances). The last line is `ratio ours/baseline = R`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import relay_configs as configs  # bench/ is on sys.path when this file runs
import relay_submit as submit
from delay_proxy import ProxyProcess
from proxy_capacity import capacity
from relay_stats import Latency, against_target, arrivals, message_ids, rate, ratio

from mailagent.agent.queue_scan import count_folders
from mailagent.lab import sink
from mailagent.lab import sink_store as store
from tests.agent.postfix_instance import PostfixInstance

THROUGHPUT_TARGET, LATENCY_TARGET = 3.0, 5.0


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SinkLog:
    """A sink .jsonl file read on from where the last read stopped."""

    def __init__(self, path: Path):
        self.path, self.offset, self.records = path, 0, []

    def read(self) -> list[dict]:
        if self.path.exists():
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line being appended waits for next time
            self.offset += len(complete)
            self.records += [json.loads(line) for line in complete.splitlines() if line.strip()]
        return self.records


@dataclass
class Config:
    """One configuration under test: its proxy, its Postfix instance, its sink port."""

    label: str
    sink_port: int
    proxy: ProxyProcess
    pf: PostfixInstance
    hold_port: int
    smtpd_port: int


def start_config(label: str, work: Path, info: dict, sink_port: int, args) -> Config:
    proxy = ProxyProcess(sink_port, args.rtt_ms)
    smarthost = configs.Smarthost(info["hostname"], proxy.port, info["username"], info["password"],
                                  Path(info["ca_cert"]).read_text())
    root = work / label
    main_cf, files = (configs.ours(smarthost, **args.profile) if label == "ours"
                      else configs.baseline(smarthost, root / "etc"))
    hold_port, smtpd_port = free_port(), free_port()
    pf = configs.instance(root, label, main_cf, files, smtpd_port, hold_port,
                          hosts=f"127.0.0.1 localhost {info['hostname']}\n")
    return Config(label, sink_port, proxy, pf, hold_port, smtpd_port)


SHOWN = ("smtp_destination_concurrency_limit", "smtp_initial_destination_concurrency",
         "smtp_tls_connection_reuse", "smtp_connection_cache_on_demand", "smtp_destination_rate_delay",
         "smtp_tls_session_cache_database", "smtp_tls_security_level")


def settings(config: Config) -> str:
    """The settings the two configurations differ in, as this Postfix reads them."""
    out = subprocess.run(["postconf", "-c", str(config.pf.etc), *SHOWN], capture_output=True, text=True,
                         check=True).stdout
    return "; ".join(line.strip() for line in out.splitlines())


def wait_held(config: Config, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while count_folders(config.pf.spool)["hold"] < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{config.label}: fewer than {count} messages reached the hold queue")
        time.sleep(0.2)


def postfix_tool(config: Config, *command: str) -> None:
    subprocess.run([command[0], "-c", str(config.pf.etc), *command[1:]], check=True, capture_output=True)


def batch(config: Config, logs: dict, count: int, run: int, stall: float) -> dict:
    """Inject `count` held messages, release them, time until the sink has them all."""
    ids = message_ids(f"{uuid.uuid4().hex[:8]}-{config.label}-{run}", count)
    submit.inject(config.hold_port, ids)
    wait_held(config, count)
    before = config.proxy.stats()
    released = dt.datetime.now(dt.timezone.utc)
    postfix_tool(config, "postsuper", "-H", "ALL")
    postfix_tool(config, "postqueue", "-f")
    found, last_change = arrivals(ids, logs["mail"].read()), time.monotonic()
    while not found.complete and time.monotonic() - last_change < stall:
        time.sleep(0.5)  # the time taken is the sink's, not the poll's
        now_found = arrivals(ids, logs["mail"].read())
        last_change = time.monotonic() if now_found.arrived != found.arrived else last_change
        found = now_found
    if not found.complete:
        raise SystemExit(f"{config.label} run {run}: {found.shortfall()}")
    seconds = (found.last_at - released).total_seconds()
    after = config.proxy.stats()
    conns = settled_connections(config, logs["connections"], released, count)
    return {"rate": rate(count, seconds), "seconds": seconds, "connections": len(conns),
            "tls": sum(1 for c in conns if c["tls"]), "proxy_chunks": after["chunks"] - before["chunks"]}


def settled_connections(config: Config, log: SinkLog, since: dt.datetime, count: int,
                        timeout: float = 30) -> list[dict]:
    """The sink's records of this batch's connections, once the cached ones have closed too."""
    deadline = time.monotonic() + timeout
    while True:
        conns = [c for c in log.read() if c["port"] == config.sink_port
                 and dt.datetime.fromisoformat(c["opened_at"]) >= since]
        if sum(c["messages"] for c in conns) >= count or time.monotonic() > deadline:
            return conns
        time.sleep(0.5)


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.1f}, min {min(values):.1f}, max {max(values):.1f}"


def throughput(configs_: list[Config], logs: dict, args: argparse.Namespace) -> dict[str, list[dict]]:
    results = {c.label: [] for c in configs_}
    for run in range(1, args.runs + 1):
        order = configs_ if run % 2 else configs_[::-1]  # who goes first alternates
        for config in order:
            r = batch(config, logs, args.messages, run, args.stall)
            results[config.label].append(r)
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            say(f"run {run} {config.label:<8} {args.messages} msgs in {r['seconds']:6.2f} s = "
                f"{r['rate']:7.1f} msg/s; sink: {r['connections']} connections, {r['tls']} TLS "
                f"handshakes; proxy: {r['proxy_chunks']} chunks; load {load}")
    return results


def latencies(ours: Config, info: dict, args: argparse.Namespace) -> dict[str, Latency]:
    direct = submit.Direct(ours.proxy.port, info["username"], info["password"], info["ca_cert"])
    context = submit.tls_context(info["ca_cert"])
    ways = {
        "local smtp": lambda m: submit.submit_smtp(ours.smtpd_port, m),
        "local sendmail": lambda m: submit.submit_sendmail(ours.pf.etc, m),
        "direct smtp+tls+auth": lambda m: submit.submit_direct(direct, m, context),
    }
    found = {}
    for name, way in ways.items():
        ids = message_ids(f"{uuid.uuid4().hex[:8]}-latency", args.latency_messages)
        timings = submit.timed_parallel(way, ids, parallel=8)
        if timings.errors:
            say(f"{name}: {sum(timings.errors.values())} failed: {dict(timings.errors)}")
        found[name] = Latency.of(timings.seconds)
        say(f"submit latency, 8 parallel, {name:<21} {found[name].describe()}")
    return found


def report(results: dict[str, list[dict]], lat: dict[str, Latency], cap: dict, args) -> None:
    say(f"\nthroughput, {args.runs} runs of {args.messages} messages, RTT {args.rtt_ms:g} ms:")
    for label, runs in results.items():
        say(f"  {label:<8} msg/s {spread([r['rate'] for r in runs])}; connections "
            f"{spread([r['connections'] for r in runs])}; TLS handshakes {spread([r['tls'] for r in runs])}")
    fastest = max(r["proxy_chunks"] / r["seconds"] for runs in results.values() for r in runs)
    say(f"proxy at 0 ms: {cap['chunks_per_s']:.0f} chunks/s in small exchanges "
        f"({cap['parallel']} connections), {cap['mb_per_s']:.0f} MB/s bulk; the busiest batch "
        f"needed {fastest:.0f} chunks/s ({fastest / cap['chunks_per_s']:.0%} of that)")
    local, direct = lat["local smtp"].p50, lat["direct smtp+tls+auth"].p50
    say(f"submit p50 local smtp {local * 1000:.1f} ms, local sendmail "
        f"{lat['local sendmail'].p50 * 1000:.1f} ms, direct {direct * 1000:.1f} ms; direct/local smtp: "
        f"{against_target(ratio(direct, local), LATENCY_TARGET)}; direct/local sendmail: "
        f"{against_target(ratio(direct, lat['local sendmail'].p50), LATENCY_TARGET)}")
    ours = statistics.median(r["rate"] for r in results["ours"])
    base = statistics.median(r["rate"] for r in results["baseline"])
    say(f"throughput ours/baseline (medians): {against_target(ratio(ours, base), THROUGHPUT_TARGET)}")
    say(f"ratio ours/baseline = {ours / base:.2f}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per batch")
    parser.add_argument("--runs", type=int, default=3, help="batches per configuration")
    parser.add_argument("--rtt-ms", type=float, default=40.0, help="round trip to the smarthost")
    parser.add_argument("--latency-messages", type=int, default=200, help="submissions per way in")
    parser.add_argument("--stall", type=float, default=120.0,
                        help="give up on a batch after this many seconds without an arrival")
    parser.add_argument("--profile", type=json.loads, default={}, metavar="JSON",
                        help="relay profile fields for ours, e.g. '{\"concurrency\": 40}'")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, logs)")
    args = parser.parse_args(argv)
    if min(args.messages, args.runs, args.latency_messages) < 1 or args.rtt_ms < 0:
        parser.error("--messages, --runs and --latency-messages must be at least 1, --rtt-ms >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops what we started
    work = Path(tempfile.mkdtemp(prefix="mailagent-relaybench-"))
    work.chmod(0o755)  # postfix-owned processes walk into the instance folders
    started, lab, running = time.monotonic(), work / "lab", []
    try:
        info = sink.spawn(lab, starttls_ports=(0, 0), implicit_ports=(0,))
        sdir = store.sink_dir(lab)
        logs = {"mail": SinkLog(sdir / store.MAIL_LOG), "connections": SinkLog(sdir / store.CONN_LOG)}
        for label, port in zip(("ours", "baseline"), info["ports"]["starttls"]):
            running.append(start_config(label, work, info, port, args))
        for config in running:
            say(f"{config.label}: {settings(config)}")
        say(f"sink on 127.0.0.1:{info['ports']['starttls']}, proxies (RTT {args.rtt_ms:g} ms) on "
            f"{[c.proxy.port for c in running]}; instances under {work}")
        results = throughput(running, logs, args)
        lat = latencies(running[0], info, args)
        cap = capacity()
        say(f"wall time {time.monotonic() - started:.0f} s")
        report(results, lat, cap, args)
    finally:
        for config in running:
            config.pf.stop()
            config.proxy.stop()
        sink.stop(lab)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
