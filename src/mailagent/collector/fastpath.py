"""`POST /api/v1/reports` as plain ASGI, ahead of FastAPI's routing and dependency machinery.

Every host posts every minute, so this one route carries nearly all the traffic; answering it
here saves most of the per-request framework work. The FastAPI route of the same path stays
for the OpenAPI document (and answers the same way if this middleware is not installed).
"""

from __future__ import annotations

import json

from mailagent import signing
from mailagent.collector import gate
from mailagent.collector.db import utcnow
from mailagent.collector.ingest import Outcome, Submission

PATH = "/api/v1/reports"


async def read_limited(receive, declared: str | None, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed `limit` bytes."""
    if declared and declared.isascii() and declared.isdigit() and (
            len(declared) > 18 or int(declared) > limit):
        return None
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def answer_report(collector, headers: dict[str, str], receive) -> Outcome:
    """Check, read and store one report; the Outcome says what to answer. What `gate`
    refuses is answered before the body is read or anything is queued."""
    received = utcnow()
    refused = gate.refuse_early(headers, received.timestamp(), collector.settings.max_skew_seconds)
    if refused is None:
        refused = await gate.refuse_unknown(collector, headers[signing.H_HOST.lower()])
    if refused is not None:
        collector.counters[refused.outcome] += 1
        return refused
    limit = collector.settings.max_report_bytes
    body = await read_limited(receive, headers.get("content-length"), limit)
    if body is None:
        collector.counters["too_large"] += 1
        return Outcome(413, "too_large", f"limit is {limit} bytes")
    return await collector.submit(Submission(headers, body, received))


class IngestFastPath:
    """ASGI middleware: handles report POSTs itself, passes everything else on."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        outcome = await answer_report(scope["app"].state.collector, headers, receive)
        body = json.dumps(outcome.payload()).encode()
        await send({"type": "http.response.start", "status": outcome.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
