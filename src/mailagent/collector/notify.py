"""Delivering alert changes: a webhook (JSON, retried with backoff), optionally mail, and
optionally a Prometheus Alertmanager (see `alertmanager`, which has its own thread).

A worker thread owns delivery, so a slow or dead webhook never holds up ingest or the
evaluator: `submit` only puts the change on a queue. Changes still queued at shutdown are
attempted once more within a short grace period, then dropped (and logged).
"""

from __future__ import annotations

import logging
import queue
import smtplib
import threading
import time
from email.message import EmailMessage

import httpx

from mailagent.collector.alertmanager import AlertmanagerSender
from mailagent.collector.settings import NotifySettings

log = logging.getLogger("mailagent.collector.notify")
_STOP = object()


class Notifier:
    """Sends alert changes from a background thread."""

    def __init__(self, settings: NotifySettings):
        self.settings = settings
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-notifier", daemon=True)
        self._stopping = threading.Event()
        self.delivered = 0
        self.failed = 0
        self.alertmanager = AlertmanagerSender(settings) if settings.alertmanager_url else None

    def start(self) -> None:
        self._thread.start()
        if self.alertmanager:
            self.alertmanager.start()

    def submit(self, change: dict) -> None:
        """Queue one alert change for delivery (never blocks)."""
        self._queue.put(change)
        if self.alertmanager:
            self.alertmanager.submit(change)

    def stop(self, grace: float = 5.0) -> None:
        """Finish what is queued (bounded by `grace` seconds), then end the thread."""
        self._queue.put(_STOP)
        self._thread.join(grace)
        self._stopping.set()
        self._thread.join(grace)
        if self.alertmanager:
            self.alertmanager.stop(grace)

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout_seconds) as client:
            while (change := self._queue.get()) is not _STOP:
                self._deliver(client, change)

    def _deliver(self, client: httpx.Client, change: dict) -> None:
        ok = True
        if self.settings.webhook_url:
            ok = self._post(client, change)
        if self.settings.mail_to:
            ok = self._mail(change) and ok
        if ok:
            self.delivered += 1
        else:
            self.failed += 1

    def _post(self, client: httpx.Client, change: dict) -> bool:
        delay = self.settings.webhook_backoff_seconds
        for attempt in range(1, self.settings.webhook_attempts + 1):
            try:
                response = client.post(self.settings.webhook_url, json=change)
                if response.status_code < 300:
                    return True
                log.warning("webhook answered %s (attempt %d)", response.status_code, attempt)
            except httpx.HTTPError as exc:
                log.warning("webhook failed: %s (attempt %d)", exc, attempt)
            if attempt < self.settings.webhook_attempts and self._stopping.wait(delay):
                break
            delay *= 2
        log.error("giving up on webhook for alert %s/%s", change["host"], change["kind"])
        return False

    def _mail(self, change: dict) -> bool:
        s = self.settings
        msg = EmailMessage()
        msg["From"], msg["To"] = s.mail_from, ", ".join(s.mail_to)
        msg["Subject"] = f"[mailagent] {change['state'].upper()} {change['kind']} on {change['host']}"
        msg.set_content(format_change(change))
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=10) as smtp:
                smtp.send_message(msg)
            return True
        except (OSError, smtplib.SMTPException) as exc:
            log.error("alert mail failed: %s", exc)
            return False


def format_change(change: dict) -> str:
    """A plain-text description of one alert change (the mail body)."""
    lines = [f"{k}: {change.get(k)}" for k in
             ("host", "kind", "state", "started_at", "resolved_at", "detail")]
    return "\n".join(lines) + f"\n\nsent {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}\n"
