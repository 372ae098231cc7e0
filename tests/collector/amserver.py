"""A real Prometheus Alertmanager on a loopback port, for the tests (Debian's
`prometheus-alertmanager`), optionally with HTTPS and basic auth through its web config file.

Clustering is off (`--cluster.listen-address=`): it would otherwise listen on every address.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from pathlib import Path

import bcrypt
import httpx

from mailagent import pki

from .pgserver import free_port

CONFIG = 'route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n'


def binary() -> str:
    found = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    if not found:
        raise RuntimeError("Alertmanager not found: apt-get install --no-install-recommends "
                           "prometheus-alertmanager")
    return found


class Alertmanager:
    """One Alertmanager process in `folder`; `start()` waits until it answers."""

    def __init__(self, folder: Path, port: int | None = None, tls: bool = False,
                 user: str | None = None, password: str | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.ca_file: Path | None = None
        self.auth = (user, password) if user else None
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        (self.folder / "alertmanager.yml").write_text(CONFIG)
        self._web_config(tls, user, password)
        self.proc: subprocess.Popen | None = None

    def _web_config(self, tls: bool, user: str | None, password: str | None) -> None:
        lines = []
        if tls:
            self.ca_file, _ = pki.create_ca(self.folder / "ca", "test Alertmanager CA")
            cert, key = pki.issue_server_cert(self.folder / "ca", ["localhost"], ["127.0.0.1"],
                                              self.folder / "tls")
            lines += ["tls_server_config:", f"  cert_file: {cert}", f"  key_file: {key}"]
        if user:
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            lines += ["basic_auth_users:", f"  {user}: '{hashed}'"]
        (self.folder / "web.yml").write_text("\n".join(lines) + "\n" if lines else "{}\n")

    def start(self, timeout: float = 20) -> "Alertmanager":
        self.proc = subprocess.Popen(
            [binary(), f"--config.file={self.folder / 'alertmanager.yml'}",
             f"--storage.path={self.folder / 'data'}", f"--web.config.file={self.folder / 'web.yml'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"],
            stdout=open(self.folder / "alertmanager.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.client().get("/api/v2/status").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("Alertmanager did not start:\n" +
                           (self.folder / "alertmanager.log").read_text()[-2000:])

    def client(self) -> httpx.Client:
        verify = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else True
        return httpx.Client(base_url=self.url, verify=verify, auth=self.auth, timeout=5)

    def alerts(self, **labels: str) -> list[dict]:
        """What `GET /api/v2/alerts` lists (active ones), narrowed to those with `labels`."""
        with self.client() as client:
            listed = client.get("/api/v2/alerts").raise_for_status().json()
        return [a for a in listed if labels.items() <= a["labels"].items()]

    def wait_for(self, predicate, timeout: float = 20, **labels: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.alerts(**labels)
            if predicate(found) or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
