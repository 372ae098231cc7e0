"""The running collector: database, batch writer, notifier and timers, started and stopped
together by the web app's lifespan. Passed to request handlers through `app.state`."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from functools import partial

from sqlalchemy.engine import Engine

from mailagent.collector import alerting, ingest, migrate, retention
from mailagent.collector.auth import FailureLimiter
from mailagent.collector.db import make_engine, utcnow
from mailagent.collector.keycache import KeyCache
from mailagent.collector.leader import SqliteLeader
from mailagent.collector.notify import Notifier
from mailagent.collector.settings import CollectorSettings
from mailagent.collector.writer import BatchWriter

log = logging.getLogger("mailagent.collector")


class Collector:
    """Everything one collector process holds; no module-level state."""

    def __init__(self, settings: CollectorSettings, engine: Engine | None = None):
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url)
        # Ingest takes a connection per batch: testing it first would add a round trip to
        # every batch, so its own pool skips that and replaces a connection that failed.
        self.ingest_engine = self.engine if self.engine.dialect.name == "sqlite" else make_engine(
            self.engine.url.render_as_string(hide_password=False), ping=False)
        self.counters: Counter = Counter()
        # One key cache per process, shared by its writer threads and the ingest gate.
        self.keys = KeyCache()
        self.auth_limiter = FailureLimiter(settings.auth_failures_per_minute)
        self.writer = BatchWriter(partial(ingest.process_batch, self.ingest_engine, settings,
                                          keys=self.keys),
                                  settings.batch_max, settings.max_pending_reports,
                                  settings.writer_threads)
        self.notifier = Notifier(settings.notify)
        self.leader = SqliteLeader(self.engine)
        self._timers: list[asyncio.Task] = []

    async def start(self) -> None:
        """Migrate the schema, then start the writer, the notifier and the timers."""
        await asyncio.to_thread(migrate.upgrade, self.engine)
        self.writer.start()
        self.notifier.start()
        self._timers = [
            asyncio.create_task(self._every(self.settings.evaluate_interval_seconds,
                                            self.evaluate_now), name="alert-evaluator"),
            asyncio.create_task(self._every(self.settings.maintenance_interval_seconds,
                                            self.maintain_now), name="maintenance"),
        ]

    async def stop(self) -> None:
        """Stop timers, answer queued reports, flush notifications, close the pool."""
        for task in self._timers:
            task.cancel()
        await asyncio.gather(*self._timers, return_exceptions=True)
        await self.writer.stop()
        await asyncio.to_thread(self.notifier.stop)
        self.leader.release()
        self.ingest_engine.dispose()
        self.engine.dispose()

    async def submit(self, sub: ingest.Submission) -> ingest.Outcome:
        """Store one report (grouped with others arriving at the same time)."""
        outcome = await self.writer.submit(sub)
        self.counters[outcome.outcome] += 1
        return outcome

    async def evaluate_now(self) -> list[dict]:
        """One alert evaluation pass; changes go to the notifier."""
        if not self.leader.is_leader():
            return []
        changes = await asyncio.to_thread(alerting.evaluate, self.engine, self.settings.alerts,
                                          utcnow())
        for change in changes:
            log.info("alert %s %s on %s: %s", change["kind"], change["state"], change["host"],
                     change["detail"])
            self.notifier.submit(change)
        sender = self.notifier.alertmanager
        if sender is not None and sender.refresh_due():
            sender.refresh(await asyncio.to_thread(alerting.firing_now, self.engine))
        return changes

    async def maintain_now(self) -> retention.RetentionResult:
        """One retention pass (downsampling, pruning); only the leader runs it."""
        if not self.leader.is_leader():
            return retention.RetentionResult()
        return await asyncio.to_thread(retention.run, self.engine, self.settings, utcnow())

    async def _every(self, seconds: float, job) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await job()
            except Exception:  # noqa: BLE001 - a failed pass is logged; the timer lives on
                log.exception("%s failed", getattr(job, "__name__", job))

    def extra_metrics(self) -> dict[str, float]:
        """Process figures for /metrics beside the ingest counters."""
        return {"mailagent_collector_ingest_batches_total": self.writer.batches,
                "mailagent_collector_ingest_largest_batch": self.writer.largest_batch,
                "mailagent_collector_notifications_delivered_total": self.notifier.delivered,
                "mailagent_collector_notifications_failed_total": self.notifier.failed,
                **self._alertmanager_metrics()}

    def _alertmanager_metrics(self) -> dict[str, float]:
        sender = self.notifier.alertmanager
        if sender is None:
            return {}
        return {"mailagent_collector_alertmanager_posts_total": sender.posts,
                "mailagent_collector_alertmanager_failures_total": sender.failures,
                "mailagent_collector_alertmanager_resolved_pending": sender.pending()}
