"""`mailagent register`: tell the collector this host's public key (run by the deploy, on the host).

    POST {collector_url}/api/v1/hosts/register
    Authorization: Bearer <registration token, read from stdin so it never shows in ps>
    {"host": "<host>", "public_key": "<base64 raw Ed25519 public key>"}

The collector treats the same key again as a no-op; a different key for a known host needs
`replace: true` (`--replace`), so a stolen token cannot silently take over a host.
"""

from __future__ import annotations

import httpx

from mailagent import signing
from mailagent.agent.settings import AgentSettings


class RegistrationFailed(Exception):
    """The collector refused or could not be reached."""


def register(settings: AgentSettings, token: str, replace: bool = False,
             url: str | None = None, timeout: float = 15) -> dict:
    """Register; return the collector's JSON answer. Raises RegistrationFailed."""
    base = (url or settings.collector_url or "").rstrip("/")
    if not base:
        raise RegistrationFailed("collector_url: not set")
    key = signing.load_private_key(settings.key_path)
    body = {"host": settings.host, "public_key": signing.public_key_text(key)}
    if replace:
        body["replace"] = True
    verify = str(settings.collector_ca_file) if settings.collector_ca_file else True
    try:
        response = httpx.post(f"{base}/api/v1/hosts/register", json=body, timeout=timeout,
                              headers={"Authorization": f"Bearer {token.strip()}"}, verify=verify)
    except httpx.HTTPError as exc:
        raise RegistrationFailed(f"{base}: {exc}") from None
    if response.status_code >= 300:
        raise RegistrationFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    try:
        return response.json()
    except ValueError:
        return {}
