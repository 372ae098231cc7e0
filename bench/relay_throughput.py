"""Relay throughput on the QEMU lab: our Postfix relay settings against a baseline, one run.

    .venv/bin/python bench/relay_throughput.py [--messages 2000] [--direct-messages 200]
                                               [--reuse LABDIR]

Boots its own lab (1 relay VM, the TLS+AUTH sink on free loopback ports, no collector) unless
`--reuse` names a running one, deploys deploy/relay.py to the relay VM and measures, in order:

1. ours: an application ON the VM (bench/relay_app.py) submits N messages, one connection each,
   to the local Postfix; throughput = N / (first submit -> the sink records the last one);
2. direct: the same application sends a sample straight to the sink, STARTTLS + AUTH per
   message, the way an application without a local relay would;
3. baseline: redeploy with the relay as popular roles ship it (no TLS connection reuse,
   Postfix's default concurrency, Debian's TLS session cache), then as 1.

Every batch is checked at the sink, per Message-ID, to have arrived exactly once before a rate
is printed. Targets (issue 6): ours/baseline throughput >= 3x; direct p50 / local p50 >= 5x.
Stops whatever it started, also on SIGTERM or Ctrl-C; a reused lab is put back to its own
settings. Load averages are printed with each figure: the VM shares 2 cores with others.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import relay_lab as lab  # bench/ is on sys.path when this file runs
from relay_stats import (
    Arrivals,
    Latency,
    against_target,
    arrivals,
    message_ids,
    rate,
    ratio,
)

from mailagent.lab import state as lab_state
from mailagent.lab import vm

# Debian's stock main.cf (and the roles that template it) keeps a TLS session cache.
BASELINE = {"tls_connection_reuse": False, "concurrency": 20,
            "extra_main_cf": {"smtp_tls_session_cache_database": "btree:${data_directory}/smtp_scache"}}
THROUGHPUT_TARGET, LATENCY_TARGET = 3.0, 5.0


@dataclass
class Batch:
    """One measured batch: latencies from the app, arrivals from the sink."""

    label: str
    latency: Latency | None
    errors: dict
    submit_seconds: float
    arrivals: Arrivals
    first_submit: dt.datetime

    @property
    def throughput(self) -> float | None:
        if not self.arrivals.complete:
            return None
        return rate(self.arrivals.expected, (self.arrivals.last_at - self.first_submit).total_seconds())


class Bench:
    """The measuring steps, on one relay VM of one lab."""

    def __init__(self, state: dict, work: Path, args: argparse.Namespace):
        self.state, self.work, self.args = state, work, args
        self.host = lab.relay_host(state)
        self.run_id = uuid.uuid4().hex[:8]
        ports = state["sink"]["ports"]["starttls"]
        # Both configurations: same smarthost, STARTTLS, certificate check and AUTH.
        self.smarthost = {"port": ports[0], "tls": "starttls"}

    def deploy(self, label: str, overrides: dict) -> list[str]:
        say(f"{label}: relay profile = the lab's, with {json.dumps({**self.smarthost, **overrides})}")
        seconds = lab.deploy_relay(self.state, self.work, self.host, {**self.smarthost, **overrides})
        say(f"{label}: deploy/relay.py to {self.host} took {seconds:.0f} s")
        lab.upload_app(self.state, self.host)
        return lab.postfix_settings(self.state, self.host)

    def batch(self, label: str, mode: str, count: int) -> Batch:
        """Send `count` messages from the VM's app and wait for the sink to record them."""
        left = lab.wait_queue_empty(self.state, self.host)
        if left:
            say(f"{label}: warning: {left} messages still queued on {self.host} before the batch")
        prefix = f"{self.run_id}-{label}"
        settings = {"mode": mode, "count": count, "prefix": prefix, "sender": f"app@{self.host}",
                    "recipient": "someone@example.com", "body_bytes": 1024}
        if mode == "direct":
            sink = self.state["sink"]
            settings |= {"host": sink["hostname"], "port": self.smarthost["port"],
                         "username": sink["username"], "password": sink["password"],
                         "ca_file": "/etc/postfix/relay-ca.pem"}
        first = []
        rc, lines, err = lab.run_streaming(
            self.state, self.host, f"python3 {lab.APP_PATH}", json.dumps(settings),
            lambda line: first.append(now()) if line == "started" and not first else None)
        if rc != 0 or not first:
            raise SystemExit(f"{label}: the app failed on {self.host} (exit {rc}): {err[-2000:]}")
        result = json.loads(lines[-1])
        found = self.wait_arrivals(message_ids(prefix, count))
        latency = Latency.of(result["latencies"]) if result["latencies"] else None
        return Batch(label, latency, result["errors"], result["seconds"], found, first[0])

    def wait_arrivals(self, ids: list[str]) -> Arrivals:
        """Poll the sink until the batch is complete, or nothing new came for --stall seconds."""
        found, last_change = arrivals(ids, lab.sink_records(self.state)), time.monotonic()
        while not found.complete and time.monotonic() - last_change < self.args.stall:
            time.sleep(2)
            now_found = arrivals(ids, lab.sink_records(self.state))
            if now_found.arrived != found.arrived:
                last_change = time.monotonic()
            found = now_found
        return found

    def load(self) -> str:
        host = " ".join(f"{x:.2f}" for x in os.getloadavg())
        return f"load avg host {host}, {self.host} {lab.guest_load(self.state, self.host)}"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def say(text: str) -> None:
    print(text, flush=True)


def report(batch: Batch, load: str) -> None:
    """Print one batch's figures as soon as it is measured."""
    errors = sum(batch.errors.values())
    say(f"{batch.label}: submitted {batch.latency.count if batch.latency else 0} in "
        f"{batch.submit_seconds:.1f} s, {errors} failed{'' if not errors else ': ' + str(batch.errors)}")
    if batch.latency:
        say(f"{batch.label}: submit latency {batch.latency.describe()}")
    if batch.arrivals.complete:
        elapsed = (batch.arrivals.last_at - batch.first_submit).total_seconds()
        say(f"{batch.label}: all {batch.arrivals.expected} arrived exactly once; last one "
            f"{elapsed:.1f} s after the first submit -> {batch.throughput:.2f} msg/s")
        # Near 0: the relay kept up and the app's submitting set the pace, not the delivery.
        say(f"{batch.label}: delivery finished {elapsed - batch.submit_seconds:.1f} s after the last submit")
    else:
        say(f"{batch.label}: NO RATE: {batch.arrivals.shortfall()}")
    say(f"{batch.label}: {load}")


def print_difference(ours: list[str], baseline: list[str]) -> None:
    """The exact difference of the two deployed configurations (postconf -n, tlsproxy)."""
    say("what differs on the host (postconf -n and postconf -M tlsproxy/unix; - ours, + baseline):")
    for line in difflib.unified_diff(ours, baseline, lineterm="", n=0):
        if not line.startswith(("---", "+++", "@@")):
            say(f"  {line}")


def summary(ours: Batch, baseline: Batch, direct: Batch) -> None:
    def ms(latency, field):
        return f"{getattr(latency, field) * 1000:.1f}" if latency else "n/a"

    def tp(batch):
        return f"{batch.throughput:.2f}" if batch.throughput else "n/a"

    say(f"\n{'figure':<34} {'ours':>10} {'baseline':>10} {'direct':>10}")
    say(f"{'throughput (msg/s, end to end)':<34} {tp(ours):>10} {tp(baseline):>10} {'':>10}")
    for field in ("p50", "p99"):
        say(f"{'submit latency ' + field + ' (ms)':<34} {ms(ours.latency, field):>10} "
            f"{ms(baseline.latency, field):>10} {ms(direct.latency, field):>10}")
    say(f"{'sample size':<34} {ours.arrivals.expected:>10} {baseline.arrivals.expected:>10} "
        f"{direct.arrivals.expected:>10}")
    say(f"ours / baseline throughput: {against_target(ratio(ours.throughput, baseline.throughput), THROUGHPUT_TARGET)}")
    say(f"direct p50 / local p50 (ours): "
        f"{against_target(ratio(direct.latency and direct.latency.p50, ours.latency and ours.latency.p50), LATENCY_TARGET)}")


def measure(bench: Bench) -> None:
    args = bench.args
    ours_cf = bench.deploy("ours", {})
    ours = bench.batch("ours", "local", args.messages)
    report(ours, bench.load())
    direct = bench.batch("direct", "direct", args.direct_messages)
    report(direct, bench.load())
    say(f"direct p50 / local p50 (ours): "
        f"{against_target(ratio(direct.latency and direct.latency.p50, ours.latency and ours.latency.p50), LATENCY_TARGET)}")
    baseline_cf = bench.deploy("baseline", BASELINE)
    print_difference(ours_cf, baseline_cf)
    baseline = bench.batch("baseline", "local", args.messages)
    report(baseline, bench.load())
    say(f"ours / baseline throughput: {against_target(ratio(ours.throughput, baseline.throughput), THROUGHPUT_TARGET)}")
    summary(ours, baseline, direct)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages per configuration")
    parser.add_argument("--direct-messages", type=int, default=200,
                        help="sample sent straight to the sink (each does TLS+AUTH under emulation)")
    parser.add_argument("--reuse", type=Path, metavar="LABDIR", help="measure on this running lab")
    parser.add_argument("--stall", type=float, default=180.0,
                        help="give up waiting for a batch after this many seconds without arrivals")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.direct_messages < 1:
        parser.error("--messages and --direct-messages must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # SIGTERM (a timeout) must still stop the lab: make it an exception so `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mailagent-relaybench-"))
    folder = args.reuse.absolute() if args.reuse else work / "lab"
    os.environ["MAILAGENT_LAB_DIR"] = str(folder)
    bench = None
    try:
        state = lab_state.load(folder) if args.reuse else lab.own_lab(folder, say)
        bench = Bench(state, work, args)
        measure(bench)
    finally:
        if args.reuse and bench:
            say("putting the reused lab's relay back to its own settings")
            lab.deploy_relay(bench.state, work, bench.host, {})
        elif not args.reuse and lab_state.state_path(folder).exists():
            vm.down(folder, progress=lambda m: say(f"lab down: {m}"))
        shutil.rmtree(work, ignore_errors=True)
        say(f"wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
