"""What refuses a report before it is queued for the writer: checks on the request alone and
one key lookup, so traffic that is not from a registered host never opens a write transaction
or counts against the writer's pending limit. In this order::

    415 unsupported_media_type  Content-Type is not application/json (a charset must be utf-8)
    401 unknown_host            signature headers missing, or no key registered for the host
    403 bad_signature           a signature header is malformed (`signing.check_form`)
    401 stale                   timestamp outside max_skew_seconds; the answer's server_time
                                (and Date header) is the collector's clock, to detect skew

The signature itself is checked with the batch (`ingest`), on the writer's thread.
"""

from __future__ import annotations

import asyncio

from mailagent import signing
from mailagent.collector import store
from mailagent.collector.ingest import Outcome


def signed_headers(headers: dict[str, str]) -> dict[str, str]:
    """The signing headers present in `headers` (lower-case names) under canonical names."""
    return {h: headers[h.lower()] for h in signing.SIGNED_HEADERS if h.lower() in headers}


def refuse_early(headers: dict[str, str], now: float, max_skew: float) -> Outcome | None:
    """The refusal that needs no database, or None."""
    if not is_json(headers.get("content-type", "")):
        return Outcome(415, "unsupported_media_type", "send Content-Type: application/json")
    signed = signed_headers(headers)
    try:
        signing.check_form(signed)
        signing.check_time(signed[signing.H_TIMESTAMP], now, max_skew)
    except signing.UnknownHost as exc:
        return Outcome(401, "unknown_host", str(exc))
    except signing.Stale as exc:
        return Outcome(401, "stale", str(exc), extra={"server_time": int(now)})
    except signing.BadSignature as exc:
        return Outcome(403, "bad_signature", str(exc))
    return None


def is_json(content_type: str) -> bool:
    """application/json, optionally with charset=utf-8."""
    media, *params = (part.strip().lower() for part in content_type.split(";"))
    charsets = [p.partition("=")[2].strip('" ') for p in params if p.startswith("charset")]
    return media == "application/json" and all(c in ("utf-8", "utf8") for c in charsets)


async def refuse_unknown(collector, host: str) -> Outcome | None:
    """401 unless `host` has a key (the process's key cache, else the database); the key read
    is remembered, and ingest checks it again in its transaction anyway."""
    if collector.keys.get(host) is not None:
        return None
    text = await asyncio.to_thread(store.public_key, collector.engine, host)
    if text is None:
        return Outcome(401, "unknown_host", f"host {host!r} is not registered")
    collector.keys.remember(host, text)
    return None
