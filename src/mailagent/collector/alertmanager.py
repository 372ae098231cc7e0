"""Alerts to a Prometheus Alertmanager through its v2 API (`POST /api/v2/alerts`).

Alertmanager keeps an alert only while it hears of it: one not posted again within its
`resolve_timeout` (5 min by default) is resolved on its own. So the sender holds the firing
alerts and posts them all with every change, and again every `alertmanager_repeat_seconds`;
a resolved alert is posted with `endsAt` until Alertmanager has accepted it once.

The leader's evaluation pass feeds it (see `service`): each change at once and, when a repeat
is due, the firing alerts as the database has them. A collector that restarts or becomes the
leader therefore re-posts what fires, and one that stops being the leader stops re-posting.

A failed post (no connection, TLS, a credential file that cannot be used, any answer but 2xx)
is logged in one line, counted, and retried with doubling delays up to the repeat interval;
the alerts stay queued. The credential files are read at each post and never logged.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

import httpx

from mailagent.collector.settings import NotifySettings

log = logging.getLogger("mailagent.collector.alertmanager")
TIMEOUT = 10.0
FIRST_RETRY_SECONDS = 1.0
SOURCE = "mailagent-collector"
# Smarthost trouble stops all mail from a host; the rest is a queue that waits.
CRITICAL = {"relay_unreachable", "sasl_auth_failures"}


class CredentialError(Exception):
    """A credential file is missing, unreadable or readable by others (the message names it)."""


def alertname(kind: str) -> str:
    """`queue_deferred` as `MailagentQueueDeferred` (Prometheus' alert naming)."""
    return "Mailagent" + "".join(part.capitalize() for part in kind.split("_"))


def postable(change: dict, external_url: str | None) -> dict:
    """One alert change (see `alerting`) as a v2 `postableAlert`."""
    alert = {"labels": {"alertname": alertname(change["kind"]), "host": change["host"],
                        "kind": change["kind"], "source": SOURCE,
                        "severity": "critical" if change["kind"] in CRITICAL else "warning"},
             "annotations": {"summary": f"{change['kind']} on {change['host']}",
                             "description": str(change.get("detail") or "")},
             "startsAt": _rfc3339(change["started_at"])}
    if change.get("resolved_at"):
        alert["endsAt"] = _rfc3339(change["resolved_at"])
    if external_url:
        alert["generatorURL"] = f"{external_url.rstrip('/')}/hosts/{quote(change['host'])}"
    return alert


def _rfc3339(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_secret(path: Path) -> str:
    """The first line of a credential file that only its owner may read."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CredentialError(f"{path} may be read by group or others (mode {mode:04o}); "
                                  "chmod 600 it")
        return path.read_text().strip()
    except OSError as exc:
        raise CredentialError(f"{path}: {exc.strerror or exc}") from None


class AlertmanagerSender:
    """Keeps Alertmanager's view of mailagent's alerts current, from a background thread."""

    def __init__(self, settings: NotifySettings):
        self.settings = settings
        self.url = settings.alertmanager_url.rstrip("/") + "/api/v2/alerts"
        self.posts = 0
        self.failures = 0
        self._firing: dict[int, dict] = {}
        self._resolved: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._last_refresh: float | None = None
        self._thread = threading.Thread(target=self._run, name="alertmanager", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, change: dict) -> None:
        """Take one alert change into the next post (never blocks on the network)."""
        with self._lock:
            if change["state"] == "firing":
                self._firing[change["id"]] = change
            else:
                self._firing.pop(change["id"], None)
                self._resolved[change["id"]] = change
        self._wake.set()

    def refresh_due(self) -> bool:
        """True when the firing alerts should be re-read and posted again."""
        last = self._last_refresh
        return last is None or time.monotonic() - last >= self.settings.alertmanager_repeat_seconds

    def refresh(self, firing: list[dict]) -> None:
        """Replace the firing alerts with `firing` (the database's) and post them."""
        with self._lock:
            self._firing = {c["id"]: c for c in firing if c["id"] not in self._resolved}
        self._last_refresh = time.monotonic()
        self._wake.set()

    def pending(self) -> int:
        """Resolved alerts Alertmanager has not accepted yet."""
        with self._lock:
            return len(self._resolved)

    def stop(self, grace: float = 5.0) -> None:
        """One last post of what is queued (bounded by `grace`), then end the thread."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is not None:
            self._thread.join(grace)
        if self.pending():
            log.error("%d resolved alert(s) not delivered to Alertmanager at %s; it resolves "
                      "them itself after its resolve_timeout", self.pending(), self.url)

    def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._post_once():
                delay = FIRST_RETRY_SECONDS
                continue
            if self._stopping.wait(delay):
                break
            delay = min(delay * 2, self.settings.alertmanager_repeat_seconds)
            self._wake.set()
        if self.pending():
            self._post_once()

    def _post_once(self) -> bool:
        with self._lock:
            resolved, firing = dict(self._resolved), list(self._firing.values())
        # Resolved first: a new alert for the same host and kind must win over its old one.
        body = [postable(c, self.settings.external_url) for c in [*resolved.values(), *firing]]
        if not body:
            return True
        try:
            self._send(body)
        except (httpx.HTTPError, CredentialError, OSError) as exc:
            self.failures += 1
            log.warning("alertmanager at %s: %s; %d alert(s) kept for the next attempt",
                        self.url, exc, len(body))
            return False
        except Exception as exc:  # noqa: BLE001 - the thread must live on; one line, no traceback
            self.failures += 1
            log.error("alertmanager at %s: unexpected %s: %s", self.url, type(exc).__name__, exc)
            return False
        with self._lock:
            for alert_id in resolved:
                self._resolved.pop(alert_id, None)
        self.posts += 1
        return True

    def _send(self, body: list[dict]) -> None:
        s = self.settings
        headers, auth = {}, None
        if s.alertmanager_bearer_token_file:
            headers["Authorization"] = f"Bearer {read_secret(s.alertmanager_bearer_token_file)}"
        if s.alertmanager_password_file:
            auth = httpx.BasicAuth(s.alertmanager_username,
                                   read_secret(s.alertmanager_password_file))
        verify = (ssl.create_default_context(cafile=str(s.alertmanager_ca_file))
                  if s.alertmanager_ca_file else True)
        with httpx.Client(verify=verify, timeout=TIMEOUT, auth=auth) as client:
            response = client.post(self.url, json=body, headers=headers)
        if response.status_code >= 300:
            raise httpx.HTTPStatusError(f"answered {response.status_code}: "
                                        f"{response.text[:200].strip()}",
                                        request=response.request, response=response)
