"""The relay profile: the one typed description of how a host hands its mail to a smarthost.

Host data key `relay` (a dict) is parsed by `parse_profile` (mailagent.relay.parse), which reports
every problem at once, one line per problem naming the field, before any host is touched:

    ProfileError
      problems: list[str]   e.g. ["relay.port: 2465 is not a port sendgrid offers (...)"]
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from mailagent.relay.presets import get_provider, providers

ProviderName = Literal[
    "sendgrid", "mailgun", "ses", "mandrill", "sparkpost", "gmail", "google_relay", "office365",
    "office365_connector", "outlook", "hub", "custom"
]
DURATION = r"^[0-9]+[smhdw]?$"
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)


class ProfileError(ValueError):
    """A relay profile that cannot be used; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class ClientCert(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cert_pem: str = Field(description="PEM of this host's certificate (then any intermediates); "
                          "written to `/etc/postfix/relay-client-cert.pem` (`smtp_tls_cert_file`).")
    key_pem: SecretStr | None = Field(None, description="PEM of its private key, unencrypted; "
                                      "written only to the root-owned 0600 "
                                      "`/etc/postfix/relay-client-key.pem` (`smtp_tls_key_file`), "
                                      "never shown. Prefer `key_env`.")
    key_env: str | None = Field(None, description="Name of an environment variable on the "
                                "control machine that holds the key PEM instead.")

    def key(self) -> str:
        return self.key_pem.get_secret_value() if self.key_pem else ""


class FallbackRelay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="Host name of the fallback smarthost.")
    port: int = Field(ge=1, le=65535, description="Its port; the TLS mode must match the primary relay's.")


class DrainRelay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="Host name of the hub (or other relay) `mailagent drain` hands "
                      "the queue to when the smarthost cannot take it before the drain timeout.")
    port: int = Field(1587, ge=1, le=65535, description="Its port; 465, 1465 and 2465 mean implicit "
                      "TLS, others STARTTLS.")
    ca_pem: str | None = Field(None, description="PEM of the CA that signed its certificate; default: "
                               "the relay's `ca_pem`, else the project CA (`mailagent_pki_dir`).")
    username: str | None = Field(None, description="Login there; default: this host's hub login "
                                 "(its inventory name), with the password the deploy derives.")
    password: SecretStr | None = Field(None, description="Default: the derived hub password.")

    @property
    def tls(self) -> str:
        return "implicit" if self.port in (465, 1465, 2465) else "starttls"


class RelayProfile(BaseModel):
    """Everything a relay-only Postfix needs to know about its smarthost."""

    model_config = ConfigDict(extra="forbid")

    provider: ProviderName = Field(
        "custom",
        description="Provider preset (`mailagent providers` lists them), or `custom` with `host` and "
        "`port`. A preset fills in the host, the ports it offers, the username convention, limits "
        "and reply-code hints.",
    )
    region: str | None = Field(
        None,
        description="Provider region where it has several: `us`/`eu` for Mailgun and SparkPost, an "
        "AWS region such as `us-east-1` for SES (required there). Chooses the smarthost name.",
    )
    host: str | None = Field(
        None,
        description="Smarthost name for `custom`, `hub` and `office365_connector` (the tenant's MX "
        "host, `example-com.mail.protection.outlook.com`); presets with a fixed host reject it. "
        "Written in brackets to `relayhost` so no MX lookup happens.",
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Smarthost port. Defaults to the preset's (587 for most). Cloud networks block "
        "or throttle 25/465/587, so prefer 2525, 2587 (STARTTLS) or 2465 (implicit TLS) where the "
        "provider offers them. Sets `relayhost = [host]:port`.",
    )
    tls: Literal["starttls", "implicit", "none"] | None = Field(
        None,
        description="`starttls` (upgrade a plain connection) or `implicit` (TLS from the first byte, "
        "`smtp_tls_wrappermode = yes`). Follows from the port where that is unambiguous (465/2465 "
        "implicit; 25/587/2525/2587 STARTTLS). `none` only for unauthenticated internal relays.",
    )
    tls_verify: Literal["encrypt", "verify", "secure"] = Field(
        "verify",
        description="`smtp_tls_security_level`: `encrypt` (TLS required, certificate not checked), "
        "`verify` (certificate chain and host name checked; the default) or `secure` (also matched "
        "against the configured relay name, which resists DNS forgery).",
    )
    ca_file: str | None = Field(
        None,
        description="CA bundle on the target for `verify`/`secure` (`smtp_tls_CAfile`). Defaults "
        "to the system bundle (Debian `/etc/ssl/certs/ca-certificates.crt`, RHEL "
        "`/etc/pki/tls/certs/ca-bundle.crt`), or to the file written from `ca_pem`.",
    )
    ca_pem: str | None = Field(
        None,
        description="PEM text of a private CA to trust (your own hub's CA); the deploy writes it to "
        "`/etc/postfix/relay-ca.pem` and uses it as `smtp_tls_CAfile`.",
    )
    username: str | None = Field(
        None,
        description="SASL user name. Presets with a fixed convention fill it in (`apikey` for "
        "SendGrid, `SMTP_Injection` for SparkPost). Must not contain `:`.",
    )
    password: SecretStr | None = Field(
        None,
        description="SASL password. Written only to the root-owned 0600 `sasl_passwd` map and its "
        "index; never to `main.cf`, output or logs. Prefer `password_env`.",
    )
    password_env: str | None = Field(
        None,
        description="Name of an environment variable on the control machine that holds the "
        "password, so it stays out of inventory files.",
    )
    allow_port_25: bool = Field(
        False,
        description="Port 25 is refused unless this is true: cloud networks block or throttle it.",
    )
    myorigin: str | None = Field(
        None,
        description="Domain appended to bare local senders (`myorigin`), e.g. `example.com`, so "
        "`root` becomes `root@example.com` rather than `root@<hostname>`.",
    )
    sender_address: str | None = Field(
        None,
        description="Verified sender every local address is rewritten to on the way out "
        "(`smtp_generic_maps` entries for `@<hostname>`, `@localhost` and `@myorigin`). SES, "
        "Gmail and Office 365 refuse unverified senders.",
    )
    generic_map: dict[str, str] = Field(
        default_factory=dict,
        description="Extra `smtp_generic_maps` entries, local address to public address, e.g. "
        "`{\"www-data@web1\": \"app@example.com\"}`.",
    )
    forward_root_to: str | None = Field(
        None,
        description="Where mail to root, postmaster and other system accounts goes. A null client "
        "has no local delivery, so this uses `virtual_alias_maps` (aliases(5) does nothing here).",
    )
    queue_lifetime: str = Field(
        "2d",
        pattern=DURATION,
        description="`maximal_queue_lifetime`: how long undeliverable mail is retried before it "
        "bounces. Postfix's 5d hides broken credentials for too long.",
    )
    bounce_lifetime: str = Field(
        "1d", pattern=DURATION, description="`bounce_queue_lifetime`: the same for bounces."
    )
    delay_warning: str = Field(
        "4h",
        pattern=DURATION,
        description="`delay_warning_time`: tell the sender mail is delayed after this long "
        "(`0` turns the warning off).",
    )
    rate_delay: str = Field(
        "0s",
        pattern=DURATION,
        description="`smtp_destination_rate_delay`: pause between deliveries to the smarthost, for "
        "providers with a per-second sending rate (e.g. `1s` for 1 message/s).",
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        le=100,
        description="`smtp_destination_concurrency_limit`: parallel connections to the smarthost. "
        "Defaults to the preset's (Office 365: 3, Gmail: 5, SES: 10, others: 20).",
    )
    fallback_relays: list[FallbackRelay] = Field(
        default_factory=list,
        description="Smarthosts tried when the primary fails (`smtp_fallback_relay`), same TLS "
        "mode and credentials map.",
    )
    client_cert: ClientCert | None = Field(
        None,
        description="TLS client certificate this host shows the smarthost, for relays that "
        "accept a host by its certificate instead of AUTH (a Microsoft 365 inbound connector "
        "with `provider: office365_connector`).",
    )
    drain_relay: DrainRelay | None = Field(
        None,
        description="Where `mailagent drain` hands mail the smarthost could not take before the "
        "host is removed (usually the fleet's hub); the deploy adds its credentials to the "
        "SASL map and tells the agent. Set for every relay by inventories with a `hub` group.",
    )
    sasl_mechanisms: list[str] = Field(
        default_factory=list,
        description="Allowed SASL mechanisms (`smtp_sasl_mechanism_filter`), e.g. `[\"plain\", "
        "\"login\"]`. Empty allows what the server offers; a wrong filter breaks AUTH.",
    )
    tls_connection_reuse: bool = Field(
        True,
        description="`smtp_tls_connection_reuse`: keep TLS connections open through `tlsproxy` and "
        "reuse them (enables the tlsproxy service in master.cf). Against a smarthost 40 ms away, "
        "3.1x the messages/s of a relay without it at the same concurrency (25 TLS handshakes for "
        "2,000 messages instead of 2,000; bench/relay_throughput.py).",
    )
    host_lookup: Literal["dns", "native", "dns, native"] = Field(
        "dns",
        description="`smtp_host_lookup`: `native` also uses /etc/hosts (labs, split DNS).",
    )
    inet_protocols: Literal["auto", "ipv4", "all"] = Field(
        "auto",
        description="`inet_protocols`. `auto` picks `ipv4` on hosts without IPv6, where Postfix "
        "would otherwise not start with a loopback-only listener.",
    )
    check_relay: bool = Field(
        True,
        description="After the deploy, connect from the host to the smarthost (EHLO, TLS, AUTH, "
        "QUIT without sending) and fail that host's deploy on an error, with a hint.",
    )
    extra_main_cf: dict[str, str] = Field(
        default_factory=dict,
        description="Further `main.cf` parameters, written last. `postconf` must accept them "
        "without warnings. Refused: credentials, what the null client rests on (listeners, "
        "`mynetworks`, smtpd restrictions, relayhost and transports, smtp TLS level, mode and "
        "protocols, `smtp_sasl_*`, local delivery; the field to use is named), parameters "
        "Postfix 3.9+ calls obsolete, and values with `#` or a line break.",
    )
    sender_routes: list[SenderRoute] = Field(
        default_factory=list,
        description="Per-sender routing: each route lists `senders` (domains, matched exactly, "
        "or addresses; as the envelope sender is submitted) and gives their own smarthost with "
        "the main relay's keys (`provider` or `host`, `port`, `tls`, `tls_verify`, `ca_file`/"
        "`ca_pem`, `username`, `password`/`password_env`, `allow_port_25`), checked by the same "
        "rules. Sets `sender_dependent_relayhost_maps`, a transport per route "
        "(`sender_dependent_default_transport_maps`, so STARTTLS and implicit-TLS routes live "
        "side by side) and `smtp_sender_dependent_authentication`. Every other sender uses the "
        "main relay. A sender in two routes is refused.",
        json_schema_extra={"accepted": "list of mapping (`senders` + smarthost keys)"},
    )

    @property
    def preset(self):
        return get_provider(self.provider)

    def secret(self) -> str | None:
        return self.password.get_secret_value() if self.password else None


class SenderRoute(BaseModel):
    """Mail from `senders` (sender-map keys: `@example.com`, `user@example.com`) goes to `relay`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    senders: list[str]
    relay: RelayProfile


RelayProfile.model_rebuild()


def provider_names() -> list[str]:
    return list(providers())


def is_domain(value: str) -> bool:
    return bool(DOMAIN.match(value))
