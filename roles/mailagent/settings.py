"""Turn a host's data into the agent's settings, validated before anything is uploaded.

Host data:
    mailagent   dict of AgentSettings fields (optional; defaults suit a Debian relay host)
    collector   {"url": ..., "registration_token": ..., and optionally the CA that signed the
                collector's certificate (written to COLLECTOR_CA_PATH), either as "ca_file" (a
                path on the control machine, read when the deploy runs, so an inventory can name
                a CA that `mailagent pki init` or the collector's own deploy makes) or "ca_pem"
                (its PEM text)}
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from pyinfra.api import DeployError

from mailagent.agent.settings import AgentSettings
from mailagent.names import is_host_name
from mailagent.relay.deployed import DrainTarget
from mailagent.settings_loader import problem_lines

COLLECTOR_CA_PATH = "/etc/mailagent/collector-ca.pem"


def collector_of(host) -> dict | None:
    """The host's `collector` data, checked for its two keys; None when absent."""
    data = host.data.get("collector")
    if data is None:
        return None
    if not isinstance(data, dict) or not data.get("url"):
        raise DeployError(f"{host.name}: collector.url: missing (collector must be a dict with url "
                          "and registration_token)")
    if not data.get("registration_token"):
        raise DeployError(f"{host.name}: collector.registration_token: missing")
    if data.get("ca_file") and data.get("ca_pem"):
        raise DeployError(f"{host.name}: collector: give ca_file or ca_pem, not both")
    return data


def collector_ca_pem(host, collector: dict) -> str | None:
    """The collector's CA as PEM text (from ca_pem, or read from ca_file now), or None."""
    if collector.get("ca_pem"):
        return collector["ca_pem"].strip() + "\n"
    if not collector.get("ca_file"):
        return None
    path = Path(collector["ca_file"]).expanduser()
    if not path.is_file():
        raise DeployError(f"{host.name}: collector.ca_file: {path} does not exist on the control machine "
                          f"(make the fleet CA first: mailagent pki init {path.parent})")
    return path.read_text().strip() + "\n"


def settings_for(host, fallback_hostname, role: str = "relay", drain: DrainTarget | None = None,
                 log_source: str | None = None) -> AgentSettings:
    """AgentSettings for `host`; DeployError with one line per problem, naming the field.

    `role` is what the site deploy installed (relay or hub); `drain` is the relay profile's
    drain target as rendered, under what the host data says of `drain` itself;
    `log_source` is where the host's platform puts Postfix's log (the default for log_source)."""
    data = dict(host.data.get("mailagent") or {})
    data.setdefault("role", role)
    if log_source:
        data.setdefault("log_source", log_source)
    collector = collector_of(host)
    if collector and "collector_url" not in data:
        data["collector_url"] = collector["url"]
    if collector and (collector.get("ca_pem") or collector.get("ca_file")) and "collector_ca_file" not in data:
        data["collector_ca_file"] = COLLECTOR_CA_PATH
    if "host" not in data:
        data["host"] = host.name if is_host_name(host.name) else fallback_hostname()
    try:
        settings = AgentSettings.model_validate(data)
    except ValidationError as exc:
        problems = [f"{host.name}: {line}" for line in problem_lines(exc, "mailagent")]
        raise DeployError("invalid mailagent settings, nothing was changed:\n" + "\n".join(problems)) from None
    return _drain_under(settings, drain) if drain else settings


def _drain_under(settings: AgentSettings, drain: DrainTarget) -> AgentSettings:
    """`settings` with the profile's drain target, each drain field the host data set kept."""
    given = settings.drain.model_dump(include=settings.drain.model_fields_set)
    return settings.model_copy(update={"drain": drain.model_copy(update=given)})
