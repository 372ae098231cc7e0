"""The fleet's central relay hub: Postfix accepting authenticated mail from fleet hosts on two
submission ports (STARTTLS and implicit TLS) and relaying it onward like any relay host.

The onward part is the relay role's (host data `relay`, same model, same checks); this role adds
the server side: certificate from the project CA, per-host SASL logins derived on the control
machine (mailagent.control.hub.credentials), sender scoping, rate limit, and the two master.cf
services. Host data `hub_server` (mailagent.control.hub.settings.HubSettings) tunes it; every
field has a default.
"""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

from mailagent.control.hub import credentials
from mailagent.control.hub.render import (
    BLOCK_BEGIN, BLOCK_END, CLIENTS_FILE, REALM, SASL_DB, SASL_DIR, SENDER_LOGINS, TLS_DIR, render_hub,
)
from roles import certificates
from roles.postfix_hub.clients import hub_clients, hub_settings
from roles.postfix_hub.operations import managed_block, rebuild_sasldb_command
from roles.postfix_relay import (
    activate, check_ca_file, configure, gather_target, install, needs_restart, rendered_for,
    validate, verify,
)
from roles.postfix_relay.facts import PostconfValues
from roles.secrets import private_file
from roles.postfix_relay.validate import profile_for

EXTRA_PACKAGES = {"debian": ("sasl2-bin",), "rhel": ("cyrus-sasl", "cyrus-sasl-md5")}


@deploy("Postfix relay hub")
def postfix_hub(check: bool = True):
    settings = hub_settings(host)
    clients = hub_clients(host)
    profile = profile_for(host)
    target = gather_target()
    check_ca_file(profile, target)
    cert, key = _certificate(settings)
    before = host.get_fact(PostconfValues, parameters=["inet_interfaces", "inet_protocols"])
    install(target, EXTRA_PACKAGES[target.os_family])
    rendered = rendered_for(profile, target)
    hub = render_hub(settings, clients, postfix_version=target.postfix_version)
    rendered["main.cf"] += hub["main.cf.hub"]
    main_cf, maps = configure(rendered)
    server_side = serve(hub, cert, key)
    config_changed = any_changed(main_cf, *maps, *server_side)
    validate(config_changed)
    activate(main_cf, config_changed, needs_restart(rendered["main.cf"], before))
    if check and profile.check_relay:
        verify(profile, target)


def _certificate(settings) -> tuple[Path, Path]:
    if settings.cert:
        return Path(settings.cert), Path(settings.key)
    folder = credentials.pki_dir(host.data.get("mailagent_pki_dir"))
    return certificates.from_project_ca(folder, settings.names, settings.ips, host.name, "hub_server")


def serve(hub: dict[str, str], cert: Path, key: Path) -> list:
    """The server side: TLS files, SASL config and logins, sender map, master.cf services."""
    changes = [
        files.put(name=f"Upload the hub certificate {TLS_DIR}/cert.pem", src=str(cert),
                  dest=f"{TLS_DIR}/cert.pem", mode="644"),
        private_file(name=f"Upload the hub key {TLS_DIR}/key.pem (root, 0600)",
                     path=f"{TLS_DIR}/key.pem", content=key.read_text()),
        files.put(name=f"Upload {SASL_DIR}/smtpd.conf", src=StringIO(hub["sasl/smtpd.conf"]),
                  dest=f"{SASL_DIR}/smtpd.conf", mode="644"),
        files.put(name=f"Upload {SENDER_LOGINS}", src=StringIO(hub["hub_sender_logins"]),
                  dest=SENDER_LOGINS, mode="644"),
        managed_block(name="Hub submission services in master.cf", path="/etc/postfix/master.cf",
                      block=hub["master.cf.hub"], begin=BLOCK_BEGIN, end=BLOCK_END),
    ]
    logins = private_file(name=f"Upload the fleet logins {CLIENTS_FILE} (root, 0600)",
                          path=CLIENTS_FILE, content=hub["hub_clients"])
    has_db = bool(host.get_fact(File, path=SASL_DB))
    rebuilt = server.shell(name=f"Rebuild {SASL_DB} from the fleet logins",
                           commands=[rebuild_sasldb_command(SASL_DB, REALM, CLIENTS_FILE)],
                           _if=lambda: logins.did_change() or not has_db)
    return changes + [logins, rebuilt]
