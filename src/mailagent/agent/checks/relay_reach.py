"""relay_reach: connect, EHLO, TLS, AUTH, QUIT to the deployed smarthost, at a slow cadence.

Emits RelaySection(reachable=False, code=535, hint="wrong credentials: ...", checked_at=...).
Uses `mailagent.relay.check.check_relay` with the deployed relay.json; nothing is sent. The
credentials are in the root-only sasl_passwd map, which the agent (no capability, by design)
cannot read: then AUTH is left out and the check proves connect, EHLO and TLS. Refused
credentials still show, from the mail log (log_stats' SASL failures, the sasl_auth_failures
alert), and the deploy's own smarthost check, run as root, logs in.
"""

from __future__ import annotations

from datetime import datetime, timezone

from mailagent.agent.settings import AgentSettings
from mailagent.relay import deployed
from mailagent.report import RelaySection

TIMEOUT = 15.0


class NotConfigured(Exception):
    """No relay.json: the relay role has not been deployed on this host."""


class Check:
    section = "relay"

    def __init__(self, settings: AgentSettings, check_relay=None):
        self.settings = settings
        self._check_relay = check_relay

    def interval_seconds(self) -> float:
        return self.settings.relay_check_interval_seconds

    def run(self, now: float) -> RelaySection:
        relay = deployed.read(self.settings.relay_settings_path)
        if relay is None:
            raise NotConfigured(f"{self.settings.relay_settings_path} missing: relay not deployed")
        check_relay, read_credentials = self._functions()
        user = password = None
        if relay.username:
            try:
                creds = read_credentials(str(self.settings.sasl_map), f"[{relay.host}]:{relay.port}")
            except PermissionError:  # root's 0600 map: check up to TLS only
                creds = None
            user, password = creds or (None, None)
        result = check_relay(relay.host, relay.port, relay.tls, user, password, relay.ca_file,
                             TIMEOUT, relay.tls_verify, relay.hints)
        return RelaySection(reachable=bool(result["ok"]), code=result.get("code"),
                            hint=(result.get("hint") or None) and result["hint"][:512],
                            checked_at=datetime.fromtimestamp(now, timezone.utc))

    def _functions(self):
        # Imported here: the relay area is another engineer's and loads only when this runs.
        from mailagent.relay import check
        return self._check_relay or check.check_relay, check.read_credentials
