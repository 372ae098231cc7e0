"""The ingest key cache: its libsodium keys get the answers OpenSSL gives from `signing.verify_request`, and a cached key
that went stale (a re-registration by another replica) neither admits nor refuses wrongly."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from mailagent import signing
from mailagent.collector import ingest, store
from mailagent.collector.db import nonces
from mailagent.collector.keycache import HostKey, KeyCache
from mailagent.collector.settings import CollectorSettings

from .conftest import HostIdentity

pytestmark = pytest.mark.timeout(120)
BODY = b'{"report": "figures"}'


def _signed(host: HostIdentity, body: bytes = BODY, **change) -> dict[str, str]:
    headers = signing.sign_request(host.key, host.name, body)
    return {**headers, **change}


def _answer(check, *args) -> str:
    try:
        check(*args)
    except signing.SigningError as exc:
        return type(exc).__name__
    return "ok"


def _cases(web1: HostIdentity, web2: HostIdentity):
    """(name, key text, headers, body) for every way a request can pass or fail."""
    good = _signed(web1)
    H = signing
    return [
        ("valid", web1.public_key, good, BODY),
        ("tampered body", web1.public_key, good, BODY + b" "),
        ("another host's key", web2.public_key, good, BODY),
        ("unknown host", None, good, BODY),
        ("stale", web1.public_key, {**good, H.H_TIMESTAMP: str(int(time.time()) - 900)}, BODY),
        ("from the future", web1.public_key, {**good, H.H_TIMESTAMP: str(int(time.time()) + 900)},
         BODY),
        ("timestamp not digits", web1.public_key, {**good, H.H_TIMESTAMP: "-5"}, BODY),
        ("nonce malformed", web1.public_key, {**good, H.H_NONCE: "XYZ"}, BODY),
        ("host malformed", web1.public_key, {**good, H.H_HOST: "-bad host"}, BODY),
        ("signature not base64", web1.public_key, {**good, H.H_SIGNATURE: "!!"}, BODY),
        ("signature too short", web1.public_key, {**good, H.H_SIGNATURE: "AAAA"}, BODY),
        ("signature of zeros", web1.public_key, {**good, H.H_SIGNATURE: "A" * 86 + "=="}, BODY),
        ("no signature", web1.public_key,
         {k: v for k, v in good.items() if k != H.H_SIGNATURE}, BODY),
        ("no host", web1.public_key, {k: v for k, v in good.items() if k != H.H_HOST}, BODY),
    ]


def test_verify_answers_as_signing_does(web1, web2):
    answers = {}
    for name, key_text, headers, body in _cases(web1, web2):
        key = HostKey.parse(key_text) if key_text is not None else None
        mine = _answer(signing.verify_request, key, headers, body, time.time(), 300)
        theirs = _answer(signing.verify_request, key_text, headers, body, time.time(), 300)
        assert mine == theirs, name
        answers[name] = mine
    assert answers["valid"] == "ok"
    assert list(answers.values()).count("ok") == 1  # every other case is refused
    assert answers["stale"] == answers["from the future"] == "Stale"
    assert answers["unknown host"] == "UnknownHost"


def test_a_malformed_registered_key_refuses_instead_of_failing(web1):
    key = HostKey.parse("not a key")
    assert key.key is None
    assert _answer(signing.verify_request, key, _signed(web1), BODY, time.time(), 300) == "BadSignature"


def test_cache_parses_a_key_once_and_follows_a_new_one(web1, web2):
    cache = KeyCache()
    first = cache.remember(web1.name, web1.public_key)
    assert cache.remember(web1.name, web1.public_key) is first
    replaced = cache.remember(web1.name, web2.public_key)
    assert replaced.text == web2.public_key and cache.get(web1.name) is replaced


def _post(engine, keys: KeyCache, host: HostIdentity, signer=None) -> ingest.Outcome:
    body = host.report().to_wire()
    at = datetime.now(timezone.utc)
    headers = {k.lower(): v for k, v in signing.sign_request((signer or host).key, host.name,
                                                              body, now=at.timestamp()).items()}
    settings = CollectorSettings(database_url="sqlite://")
    return ingest.process_batch(engine, settings, [ingest.Submission(headers, body, at)], keys)[0]


def test_a_key_replaced_elsewhere_takes_effect_at_once(engine, web1, tmp_path):
    keys = KeyCache()
    store.register_host(engine, web1.name, web1.public_key)
    assert _post(engine, keys, web1).outcome == "accepted"
    assert keys.get(web1.name).text == web1.public_key
    # Another replica rotates the key: this process still caches the old one.
    rotated = HostIdentity(web1.name, tmp_path / "rotated")
    store.register_host(engine, web1.name, rotated.public_key, replace=True)
    assert _post(engine, keys, web1).outcome == "bad_signature"  # old key: refused
    with engine.connect() as conn:  # and its nonce, claimed on the cached key, given back
        assert conn.execute(select(func.count()).select_from(nonces)).scalar() == 1
    assert _post(engine, keys, web1, signer=rotated).outcome == "accepted"
    assert keys.get(web1.name).text == rotated.public_key


def test_a_deleted_host_is_unknown_despite_the_cache(engine, web1):
    keys = KeyCache()
    store.register_host(engine, web1.name, web1.public_key)
    assert _post(engine, keys, web1).outcome == "accepted"
    store.delete_host(engine, web1.name)
    assert _post(engine, keys, web1).outcome == "unknown_host"
