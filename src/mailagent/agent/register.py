"""`mailagent register`: tell the collector this host's public key (run by the deploy, on the host).

    POST {collector_url}/api/v1/hosts/register
    Authorization: Bearer <registration token, read from stdin so it never shows in ps>
    {"host": "<host>", "public_key": "<base64 raw Ed25519 public key>"}

The collector treats the same key again as a no-op. A different key for a known host (the host
was rebuilt under the same name) needs `replace: true` with the ADMIN token: the registration
token only adds new hosts, so a stolen one cannot take over a host. The deploy, which holds the
admin token, sends it as a second stdin line; `register_or_replace` tries the registration token
first and replaces with the admin token only when the collector has another key for the host.
"""

from __future__ import annotations

import httpx

from mailagent import signing
from mailagent.agent.settings import AgentSettings


class RegistrationFailed(Exception):
    """The collector refused or could not be reached."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


REPLACED = "registered key replaced (host rebuilt)"


def register_or_replace(settings: AgentSettings, token: str, admin_token: str | None,
                        url: str | None = None) -> tuple[dict, bool]:
    """Register with `token`; on a key conflict, replace with `admin_token` when given.

    Returns (the collector's answer, whether a different key was replaced)."""
    try:
        return register(settings, token, url=url), False
    except RegistrationFailed as exc:
        if exc.status != 409 or not admin_token:
            raise
    return register(settings, admin_token, replace=True, url=url), True


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
        raise RegistrationFailed(f"HTTP {response.status_code}: {response.text[:300]}",
                                 response.status_code)
    try:
        return response.json()
    except ValueError:
        return {}
