"""A real authoritative DNS server for tests: Debian's `nsd` on 127.0.0.1, a free port, its
config, zones, pid file and database under one folder, stopped and removed afterwards.

    with NsdServer(tmp_path, {"example.test": ZONE_TEXT}) as server:
        server.nameserver   # "127.0.0.1:40213"
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query

NSD = shutil.which("nsd") or "/usr/sbin/nsd"
SOA = "@ 300 IN SOA ns.{zone}. hostmaster.{zone}. 1 3600 600 86400 300\n@ 300 IN NS ns.{zone}.\n"

CONFIG = """server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{root}"
  pidfile: "{root}/nsd.pid"
  database: ""
  zonelistfile: "{root}/zone.list"
  xfrdfile: "{root}/xfrd.state"
  xfrdir: "{root}"
  logfile: "{root}/nsd.log"
  server-count: 1
  verbosity: 2
remote-control:
  control-enable: no
"""


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (nsd serves both on it)."""
    for _attempt in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on 127.0.0.1")


class NsdServer:
    def __init__(self, root: Path, zones: dict[str, str]):
        self.root, self.zones = Path(root), zones
        self.port = free_port()
        self.process = None

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> NsdServer:
        self.root.mkdir(parents=True, exist_ok=True)
        config = CONFIG.format(port=self.port, root=self.root)
        for zone, body in self.zones.items():
            (self.root / f"{zone}.zone").write_text(f"$ORIGIN {zone}.\n$TTL 300\n"
                                                    + SOA.format(zone=zone) + body)
            config += f'zone:\n  name: "{zone}"\n  zonefile: "{self.root}/{zone}.zone"\n'
        (self.root / "nsd.conf").write_text(config)
        checked = subprocess.run(["nsd-checkconf", str(self.root / "nsd.conf")], capture_output=True,
                                 text=True)
        assert checked.returncode == 0, checked.stderr
        self.process = subprocess.Popen([NSD, "-d", "-c", str(self.root / "nsd.conf")],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_serving(next(iter(self.zones)))
        return self

    def _wait_serving(self, zone: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        query = dns.message.make_query(f"{zone}.", "SOA")
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nsd exited: {self._log()}")
            try:
                reply = dns.query.udp(query, "127.0.0.1", port=self.port, timeout=0.2)
                if reply.answer:
                    return
            except (dns.exception.Timeout, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nsd did not serve {zone} within {timeout} s: {self._log()}")

    def _log(self) -> str:
        path = self.root / "nsd.log"
        return path.read_text()[-2000:] if path.exists() else "(no log)"

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stdout:
            self.process.stdout.close()
