"""The two Postfix configurations bench/relay_throughput.py compares, as private instances.

* ours: main.cf and the tlsproxy entry rendered by `mailagent.relay.render` from a relay profile
  whose smarthost is the delayed sink (STARTTLS, certificate checked against the sink's CA, AUTH);
* baseline: what the popular Ansible role (Oefenweb postfix, `postfix_relaytls: true`) writes:
  STARTTLS with `smtp_tls_security_level = encrypt`, AUTH, Debian's stock TLS session cache, no
  TLS connection reuse, no concurrency setting (Postfix's 20).

Each runs as a `PostfixInstance` (own config, queue, data and log under `root`, never
/etc/postfix) with two loopback listeners: `smtpd_port` (plain submission, what applications use)
and `hold_port`, whose mail goes to the hold queue, so a batch can be injected and then released
at once. Only the instance's paths and listeners are added to either configuration.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailagent.relay.parse import parse_profile  # noqa: E402
from mailagent.relay.render import render  # noqa: E402
from mailagent.relay.target import Target
from tests.agent.postfix_instance import PostfixInstance  # noqa: E402

HOLD_LISTENER = "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_client_restrictions=check_client_access,static:HOLD"

# templates/etc/postfix/main.cf.j2 of Oefenweb/ansible-postfix with its defaults and
# postfix_relaytls: true (inbound smtpd TLS and aliases left out: nothing here receives mail).
BASELINE_MAIN_CF = """\
compatibility_level = 3.6
biff = no
append_dot_mydomain = no
readme_directory = no
smtp_tls_session_cache_database = btree:${{data_directory}}/smtp_scache
myhostname = {hostname}
mydestination = $myhostname, localdomain, localhost, localhost.localdomain
mynetworks = 127.0.0.0/8
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = loopback-only
inet_protocols = ipv4
relayhost = [127.0.0.1]:{port}
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:{etc}/sasl_passwd
smtp_sasl_security_options = noanonymous
smtp_sasl_tls_security_options = noanonymous
smtp_sasl_mechanism_filter =
smtp_use_tls = yes
smtp_tls_security_level = encrypt
smtp_tls_note_starttls_offer = yes
smtp_tls_CAfile = {etc}/relay-ca.pem
message_size_limit = 10240000
disable_vrfy_command = no
"""


@dataclass(frozen=True)
class Smarthost:
    """Where both configurations relay to: the delaying proxy in front of the sink."""

    hostname: str
    port: int
    username: str
    password: str
    ca_pem: str


def postfix_version() -> tuple[int, int]:
    """This host's Postfix release, e.g. (3, 7)."""
    out = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True,
                         check=True).stdout
    major, minor = out.strip().split(".")[:2]
    return int(major), int(minor)


def ours(smarthost: Smarthost, **profile_overrides) -> tuple[str, dict[str, str]]:
    """main.cf and the other rendered files (sasl_passwd, relay-ca.pem, master.cf.entries)."""
    profile = parse_profile({
        "provider": "custom", "host": smarthost.hostname, "port": smarthost.port, "tls": "starttls",
        "username": smarthost.username, "password": smarthost.password, "ca_pem": smarthost.ca_pem,
        "host_lookup": "native", "check_relay": False, **profile_overrides,
    }, environ={})
    files = render(profile, Target(hostname="bench-ours.localdomain", has_ipv6=False,
                                   postfix_version=postfix_version()))
    return files.pop("main.cf"), files


def baseline(smarthost: Smarthost, etc: Path) -> tuple[str, dict[str, str]]:
    main_cf = BASELINE_MAIN_CF.format(hostname="bench-baseline.localdomain", port=smarthost.port, etc=etc)
    files = {"sasl_passwd": f"[127.0.0.1]:{smarthost.port} {smarthost.username}:{smarthost.password}\n",
             "relay-ca.pem": smarthost.ca_pem}
    return main_cf, files


def with_settings(main_cf: str, settings: dict[str, str]) -> str:
    """`main_cf` with each setting's line replaced where it is, or appended."""
    left = dict(settings)

    def replace(match: re.Match) -> str:
        name = match.group(1)
        return f"{name} = {left.pop(name)}" if name in left else match.group(0)

    text = re.sub(r"^([a-z0-9_]+)\s*=.*$", replace, main_cf, flags=re.M)
    return text.rstrip("\n") + "\n" + "".join(f"{name} = {value}\n" for name, value in left.items())


def instance(root: Path, label: str, main_cf: str, files: dict[str, str], smtpd_port: int,
             hold_port: int, hosts: str) -> PostfixInstance:
    """A started private instance running `main_cf` with its paths moved under `root`."""
    etc = root / "etc"
    main_cf = main_cf.replace("/etc/postfix/", f"{etc}/")
    extra = (files.pop("master.cf.entries", "").splitlines()
             + [HOLD_LISTENER.format(port=hold_port)])
    pf = PostfixInstance(root, smtpd_port=smtpd_port, master_extra=tuple(extra))
    pf.main_cf = with_settings(main_cf, {
        "queue_directory": f"{root}/spool", "data_directory": f"{root}/data", "mail_owner": "postfix",
        "setgid_group": "postdrop", "syslog_name": f"postfix-bench-{label}",
        "maillog_file": f"{root}/maillog", "maillog_file_prefixes": str(root),
    })
    etc.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (etc / name).write_text(content.replace("/etc/postfix/", f"{etc}/"))
        (etc / name).chmod(0o600 if name == "sasl_passwd" else 0o644)
    (root / "etc" / "main.cf").write_text(pf.main_cf)  # postmap reads default_database_type here
    subprocess.run(["postmap", "-c", str(etc), f"hash:{etc}/sasl_passwd"], check=True)
    chroot_etc = root / "spool" / "etc"  # the smtp client runs chrooted in the queue folder
    chroot_etc.mkdir(parents=True, exist_ok=True)
    (chroot_etc / "hosts").write_text(hosts)
    (chroot_etc / "nsswitch.conf").write_text("hosts: files\n")
    return pf.start()
