"""Idle agent footprint: RSS and CPU of `mailagent run` over a period at its normal interval.

The agent runs as a real process, from a venv built as the role builds /opt/mailagent/venv (its
wheel set, pip --no-index: no pyinfra, click or bcrypt that a dev venv would let it import),
with every check on, against a copy of the fixture queue tree, a quiet log file and a relay.json
whose smarthost port on 127.0.0.1 is closed (relay_reach runs its real code and fails), reporting
every interval over HTTPS (a throwaway CA, trusted through collector_ca_file as the role sets it)
to a real signing-checking collector stub on 127.0.0.1. CPU counts the agent and the commands it
runs (postqueue, postconf). --maps adds the resident memory of the largest mappings.

    .venv/bin/python bench/agent_footprint.py                     # 10 minutes at 60 s (issue 4)
    .venv/bin/python bench/agent_footprint.py --minutes 2 --interval 10 --maps

Targets: RSS under 50 MB, CPU under 0.5 % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailagent import pki, signing  # noqa: E402
from tests.agent.collector_stub import StubCollector  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def host_venv(folder: Path) -> Path:
    """A venv made the way roles/mailagent makes /opt/mailagent/venv: the role's wheel set,
    installed with pip --no-index (so only the agent's runtime packages are there)."""
    from roles.mailagent.wheels import build_wheels
    wheels = build_wheels(folder / "wheel-cache")
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(folder / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels.folder)]
    subprocess.run(pip + ["-r", str(wheels.folder / "requirements.txt")], check=True)
    subprocess.run(pip + ["--no-deps", str(wheels.project_wheel)], check=True)
    return folder / "bin" / "python"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, children's) CPU seconds from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(fields[i]) for i in (11, 12, 13, 14))
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def memory_mb(pid: int, field: str = "VmRSS") -> float:
    """A /proc/<pid>/status memory field (VmRSS, RssAnon, RssFile) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def largest_mappings(pid: int, n: int = 8) -> list[tuple[str, float]]:
    """The n mappings with the most resident memory (MB), from /proc/<pid>/smaps."""
    sizes: dict[str, float] = {}
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if not fields[0].endswith(":"):
            name = fields[5] if len(fields) > 5 else "[anon]"
        elif fields[0] == "Rss:":
            sizes[name] = sizes.get(name, 0.0) + int(fields[1]) / 1024
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:n]


def closed_port() -> int:
    """A loopback port nothing listens on (the smarthost relay_reach fails to reach)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_tls(collector: StubCollector, folder: Path) -> tuple[str, Path]:
    """Put the stub behind TLS with a throwaway CA; (https URL, CA file the agent trusts)."""
    ca_cert, _ = pki.create_ca(folder / "ca", "footprint bench CA")
    cert, key = pki.issue_server_cert(folder / "ca", ["localhost"], ["127.0.0.1"], folder / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    collector.server.socket = context.wrap_socket(collector.server.socket, server_side=True)
    return collector.url.replace("http://", "https://"), ca_cert


def settings_file(folder: Path, collector_url: str, interval: float, ca_file: Path | None = None) -> Path:
    spool = shutil.copytree(ROOT / "tests" / "agent" / "fixtures" / "queue", folder / "spool")
    (folder / "mail.log").write_text("")
    port = closed_port()
    (folder / "relay.json").write_text(json.dumps(
        {"host": "127.0.0.1", "port": port, "tls": "starttls", "relayhost": f"[127.0.0.1]:{port}"}))
    data = {"host": "bench.example.org", "collector_url": collector_url, "interval_seconds": interval,
            "key_path": str(folder / "agent.key"), "state_dir": str(folder / "state"),
            "spool_dir": str(folder / "state" / "spool"), "postfix_spool": str(spool),
            "log_source": str(folder / "mail.log"), "queue_detail_interval_seconds": 0,
            "relay_settings_path": str(folder / "relay.json")}
    if ca_file is not None:
        data["collector_ca_file"] = str(ca_file)
    path = folder / "agent.toml"
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in data.items()))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--plain-http", action="store_true", help="collector over plain HTTP")
    parser.add_argument("--maps", action="store_true", help="print the largest mappings too")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="mailagent-footprint-"))
    key = signing.generate_key(folder / "agent.key")
    try:
        with StubCollector({"bench.example.org": signing.public_key_text(key)}) as collector:
            url, ca_file = (collector.url, None) if args.plain_http else serve_tls(collector, folder)
            path = settings_file(folder, url, args.interval, ca_file)
            python = host_venv(folder / "venv")
            proc = subprocess.Popen([str(python), "-m", "mailagent.agent", "run", "--settings", str(path)],
                                    stderr=subprocess.DEVNULL)
            try:
                time.sleep(5)  # start-up (imports, first cycle) is not the idle footprint
                own0, child0 = cpu_seconds(proc.pid)
                started, peak = time.monotonic(), 0.0
                while time.monotonic() - started < args.minutes * 60:
                    peak = max(peak, memory_mb(proc.pid))
                    time.sleep(1)
                own1, child1 = cpu_seconds(proc.pid)
                elapsed = time.monotonic() - started
                rss_now, anon, shared = (memory_mb(proc.pid, f) for f in ("VmRSS", "RssAnon", "RssFile"))
                mappings = largest_mappings(proc.pid) if args.maps else []
            finally:
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
            print(f"{elapsed / 60:.1f} min at {args.interval:.0f} s interval, {len(collector.accepted)} reports "
                  f"accepted over {'HTTP' if args.plain_http else 'HTTPS'}")
            print(f"RSS: {rss_now:.1f} MB now, {peak:.1f} MB peak (target < 50 MB); of it {anon:.1f} MB "
                  f"anonymous, {shared:.1f} MB file-backed (shared library pages)")
            print(f"CPU: agent {100 * (own1 - own0) / elapsed:.3f} %, with its commands "
                  f"{100 * (own1 - own0 + child1 - child0) / elapsed:.3f} % of one core (target < 0.5 %)")
            print(f"SIGTERM exit code: {code}")
            for name, mb in mappings:
                print(f"  {mb:6.2f} MB  {name}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
