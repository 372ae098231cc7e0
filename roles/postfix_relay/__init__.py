"""Postfix as a relay-only null client handing all mail to an authenticated smarthost.

install -> configure -> validate -> activate -> verify. Only activate starts or reloads Postfix;
verify connects from the host to the smarthost and fails the host with a hint when it refuses.
"""

from __future__ import annotations

import json
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import DeployError, deploy
from pyinfra.facts.files import File, FindInFile
from pyinfra.facts.server import Hostname
from pyinfra.operations import apt, dnf, files, server, systemd
from pyinfra.operations.util import any_changed

from mailagent.relay import check
from mailagent.relay.render import CLIENT_CERT_PATH, CLIENT_KEY_PATH, TLSPROXY_ENTRY, render
from mailagent.relay.render_routes import MASTER_CF_ROUTES, ROUTE_MAPS
from mailagent.relay.render_routes import ca_file as route_ca_file
from mailagent.relay.target import DEBIAN_CA_BUNDLE, RHEL_CA_BUNDLE, Target, ca_file
from roles.platform import platform_of
from roles.postfix_relay.drained import keep_refusing, stays_drained
from roles.postfix_relay.facts import HasIPv6, MapIndexFresh, PostconfValues
from roles.postfix_relay.operations import relay_accepts
from roles.secrets import private_file
from roles.postfix_relay.validate import profile_for

CHECK_SCRIPT = "/usr/local/lib/mailagent/check_relay.py"
RELAY_SETTINGS = "/etc/mailagent/relay.json"
DEBIAN_PACKAGES = ["postfix", "libsasl2-modules", "ca-certificates"]
RHEL_PACKAGES = ["postfix", "cyrus-sasl-plain", "ca-certificates"]
PUBLIC_MAPS = ("generic", "virtual", *ROUTE_MAPS)
ROUTES_MARKER = "# {mark} mailagent sender_routes transports"
RESTART_PARAMETERS = ("inet_interfaces", "inet_protocols")


@deploy("Postfix relay")
def postfix_relay(check: bool = True):
    """`check=False` leaves the smarthost check to a later `check_smarthost()` (deploy/site.py
    runs it last, after the hub is up, for every host at once)."""
    profile = profile_for(host)
    warn_about_preset(profile)
    target = gather_target()
    check_ca_file(profile, target)
    before = host.get_fact(PostconfValues, parameters=list(RESTART_PARAMETERS))
    install(target)
    rendered = rendered_for(profile, target)
    main_cf, maps = configure(rendered)
    config_changed = any_changed(main_cf, *maps)
    validate(config_changed)
    activate(main_cf, config_changed, needs_restart(rendered["main.cf"], before))
    if check and profile.check_relay:
        verify(profile, target)


@deploy("Smarthost check")
def check_smarthost():
    """Connect from the host to its smarthost (EHLO, TLS, AUTH, QUIT); fail it with a hint.

    One call site for every host makes it one operation that pyinfra runs only after each host's
    previous operations, so fleet hosts check a hub that this same deploy has just set up.
    """
    profile = profile_for(host)
    if profile.check_relay:
        verify(profile, gather_target())


def preset_warnings(profile, host_name: str) -> list[str]:
    """What the deploy says for each smarthost of a host whose preset is going away, e.g.
    ["web1: relay.provider office365: Microsoft turns off password (Basic) authentication ..."]."""
    relays = [("relay", profile)] + [(f"relay.sender_routes[{index}]", route.relay)
                                     for index, route in enumerate(profile.sender_routes)]
    return [f"{host_name}: {where}.provider {relay.provider}: {relay.preset.warning}"
            for where, relay in relays if relay.preset.warning]


def warn_about_preset(profile) -> None:
    """A warning, not a failure: the preset still works until the provider turns it off."""
    for message in preset_warnings(profile, host.name):
        logger.warning(message)


def gather_target() -> Target:
    """What rendering needs from the host; the first call checks every host's platform."""
    platform = platform_of(host)
    return Target(hostname=host.get_fact(Hostname), os_family=platform.family,
                  has_ipv6=host.get_fact(HasIPv6), postfix_version=platform.postfix)


def rendered_for(profile, target: Target) -> dict[str, str]:
    """The relay's files; a drained host keeps refusing mail (roles/postfix_relay/drained.py)."""
    rendered = render(profile, target)
    if stays_drained(host):
        host.noop("host is drained: Postfix keeps refusing new mail and the agent stays stopped "
                  "(deploy with --data undrain=true to put it back into service)")
        rendered["main.cf"] = keep_refusing(rendered["main.cf"])
    return rendered


def check_ca_file(profile, target: Target) -> None:
    """A CA file the user named must already exist; the system bundle comes with ca-certificates."""
    if profile.tls_verify == "encrypt" or profile.ca_pem or not profile.ca_file:
        return
    if profile.ca_file in (DEBIAN_CA_BUNDLE, RHEL_CA_BUNDLE):
        return
    if not host.get_fact(File, path=profile.ca_file):
        raise DeployError(f"{host.name}: relay.ca_file: {profile.ca_file} does not exist on the host "
                          f"(needed for tls_verify: {profile.tls_verify}); use ca_pem to install one")


def install(target: Target, extra: tuple[str, ...] = ()) -> None:
    if target.os_family == "rhel":
        dnf.packages(name="Install postfix and the SASL plain plugin", packages=RHEL_PACKAGES + list(extra))
        return
    files.put(
        name="Upload the postfix debconf answers",
        src=StringIO("postfix postfix/main_mailer_type select No configuration\n"),
        dest="/var/cache/mailagent/postfix.debconf",
        mode="644",
    )
    server.shell(
        name="Preseed debconf so postfix does not prompt",
        commands=["debconf-set-selections /var/cache/mailagent/postfix.debconf"],
        _if=lambda: not host.get_fact(File, path="/etc/postfix/main.cf"),
    )
    apt.packages(name="Install postfix, the SASL modules and CA certificates",
                 packages=DEBIAN_PACKAGES + list(extra), update=True, cache_time=3600)


def configure(rendered: dict[str, str]):
    """Upload main.cf and the maps; index a map only when it changed or its index is stale."""
    main_cf = files.put(name="Upload /etc/postfix/main.cf", src=StringIO(rendered["main.cf"]),
                        dest="/etc/postfix/main.cf", user="root", group="root", mode="644")
    maps = [_private_map(rendered.get("sasl_passwd"))]
    maps += [_public_map(name, rendered.get(name)) for name in PUBLIC_MAPS]
    maps = [op for op in maps if op is not None]
    tlsproxy = files.line(
        name="Enable tlsproxy in master.cf (TLS connection reuse)",
        path="/etc/postfix/master.cf",
        line=r"^#\?tlsproxy[[:space:]]\+unix.*",
        replace=TLSPROXY_ENTRY,
        present=True,
    ) if rendered.get("master.cf.entries") else None
    maps += _route_transports(rendered.get(MASTER_CF_ROUTES))
    maps += _client_certificate(rendered)
    cas = [("relay-ca.pem", "the relay's CA"), ("drain-ca.pem", "the drain relay's CA")]
    cas += [(name, "a sender route's CA") for name in sorted(rendered) if name.startswith("route")
            and name.endswith("-ca.pem")]
    for name, what in cas:
        if name in rendered:
            maps.append(files.put(name=f"Upload {what} (/etc/postfix/{name})",
                                  src=StringIO(rendered[name]), dest=f"/etc/postfix/{name}", mode="644"))
    files.put(name=f"Upload {RELAY_SETTINGS}", src=StringIO(rendered["relay.json"]),
              dest=RELAY_SETTINGS, mode="644")
    files.put(name=f"Upload the relay check {CHECK_SCRIPT}", src=check.__file__,
              dest=CHECK_SCRIPT, mode="755")
    return main_cf, maps + ([tlsproxy] if tlsproxy else [])


def _client_certificate(rendered: dict[str, str]) -> list:
    """This host's TLS client certificate; its key only through private_file (0600, never diffed)."""
    if "relay-client-key.pem" not in rendered:
        for path in (CLIENT_CERT_PATH, CLIENT_KEY_PATH):
            files.file(name=f"Remove the unused client certificate file {path}", path=path,
                       present=False)
        return []
    cert = files.put(name=f"Upload the relay client certificate {CLIENT_CERT_PATH}",
                     src=StringIO(rendered["relay-client-cert.pem"]), dest=CLIENT_CERT_PATH,
                     user="root", group="root", mode="644")
    key = private_file(name=f"Upload the relay client key {CLIENT_KEY_PATH} (root, 0600)",
                       path=CLIENT_KEY_PATH, content=rendered["relay-client-key.pem"])
    return [cert, key]


def _route_transports(content: str | None) -> list:
    """The sender routes' smtp transports, one marked block in master.cf (gone without routes;
    a host that never had routes is left alone)."""
    if not content and not host.get_fact(FindInFile, path="/etc/postfix/master.cf",
                                         pattern=ROUTES_MARKER.format(mark="BEGIN")):
        return []
    return [files.block(name="Configure the sender routes' transports in /etc/postfix/master.cf",
                        path="/etc/postfix/master.cf", content=content, present=bool(content),
                        marker=ROUTES_MARKER)]


def _private_map(content: str | None):
    path = "/etc/postfix/sasl_passwd"
    if not content:
        files.file(name="Remove the unused SASL map", path=path, present=False)
        return None
    op = private_file(name=f"Upload {path} (root, 0600)", path=path, content=content)
    _postmap(path, op)
    return op


def _public_map(name: str, content: str | None):
    path = f"/etc/postfix/{name}"
    if not content:
        files.file(name=f"Remove the unused {name} map", path=path, present=False)
        return None
    op = files.put(name=f"Upload {path}", src=StringIO(content), dest=path, mode="644")
    _postmap(path, op)
    return op


def _postmap(path: str, upload) -> None:
    fresh = host.get_fact(MapIndexFresh, path=path)
    server.shell(name=f"Index {path} with postmap", commands=[f"postmap {path}"],
                 _if=lambda: upload.did_change() or not fresh)


# What makes a `postfix check` line a problem. Debian 13's check also prints informational lines
# as it syncs the chroot ("updating /etc/localtime => /var/spool/postfix//etc/localtime").
CHECK_PROBLEM = "(warning|error|fatal|panic):"


def validate(config_changed) -> None:
    script = (f'o=$(postfix check 2>&1) || {{ echo "$o" >&2; exit 1; }}; '
              f'echo "$o" | grep -Eq "{CHECK_PROBLEM}" && {{ echo "$o" >&2; exit 1; }}; '
              'w=$(postconf -n 2>&1 >/dev/null); [ -z "$w" ] || { echo "$w" >&2; exit 1; }')
    server.shell(name="Validate the postfix configuration (postfix check, postconf warnings)",
                 commands=[f"sh -c '{script}'"], _if=config_changed)


def needs_restart(main_cf: str, before: dict) -> bool:
    """inet_interfaces/inet_protocols take effect on a restart only, never on a reload."""
    wanted = dict(line.split(" = ", 1) for line in main_cf.splitlines() if " = " in line
                  and line.split(" = ", 1)[0] in RESTART_PARAMETERS)
    return any(before.get(key) != value for key, value in wanted.items())


def activate(main_cf, config_changed, restart: bool) -> None:
    systemd.service(name="Enable and start postfix", service="postfix", running=True, enabled=True)
    systemd.service(name="Restart postfix (listener settings changed)", service="postfix",
                    restarted=True, _if=lambda: restart and main_cf.did_change())
    systemd.service(name="Reload postfix", service="postfix", reloaded=True,
                    _if=lambda: config_changed() and not (restart and main_cf.did_change()))
    # Mail deferred under the old settings (say, a wrong password) goes out now, not in minutes.
    server.shell(name="Retry the queued mail with the new settings", commands=["postqueue -f"],
                 _if=config_changed)


def verify(profile, target: Target) -> None:
    """The main relay's smarthost, then each sender route's with that route's own login."""
    _check(profile, ca_file(profile, target),
           f"Check the smarthost {profile.host}:{profile.port} (EHLO, TLS, AUTH)")
    for index, route in enumerate(profile.sender_routes):
        relay = route.relay
        _check(relay, route_ca_file(index, relay, target),
               f"Check sender route {index}'s smarthost {relay.host}:{relay.port} (EHLO, TLS, AUTH)",
               sasl_key=route.senders[0])


def _check(relay, ca: str, name: str, sasl_key: str | None = None) -> None:
    arguments = ["--host", relay.host, "--port", str(relay.port), "--tls", relay.tls,
                 "--verify", relay.tls_verify,
                 "--hints-json", json.dumps(relay.preset.hints, sort_keys=True)]
    if relay.tls_verify != "encrypt":
        arguments += ["--ca-file", ca]
    if relay.username:
        arguments += ["--sasl-map", "/etc/postfix/sasl_passwd"]
        arguments += ["--sasl-key", sasl_key] if sasl_key else []
    relay_accepts(name=name, script=CHECK_SCRIPT, arguments=arguments)
