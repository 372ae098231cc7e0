"""Take mailagent (and, when asked, Postfix) off a host cleanly, after it was drained.

check -> stop -> remove. A host whose Postfix queue still holds mail stops the deploy before
anything changes (drain it first: `mailagent drain`), unless the operator forces it; nothing
the user cares about is dropped silently.

Host data (or `--data`): `remove_postfix` (also purge Postfix and its maps; default false),
`remove_force` (remove even with mail in the queue; default false).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import DeployError, FactBase, deploy
from pyinfra.operations import apt, dnf, files, server, systemd

from mailagent.relay.render import CLIENT_CERT_PATH, CLIENT_KEY_PATH
from roles.mailagent import ON_PATH, PREFIX, UNIT_PATH, USER
from roles.platform import platform_of
from roles.postfix_relay import CHECK_SCRIPT
from roles.postfix_relay.drained import flag

AGENT_FILES = (ON_PATH, UNIT_PATH, "/etc/systemd/system/mailagent-queue-count.socket",
               "/etc/systemd/system/mailagent-queue-count.service")
AGENT_DIRS = (PREFIX, "/etc/mailagent", "/var/lib/mailagent", "/var/spool/mailagent",
              CHECK_SCRIPT.rsplit("/", 1)[0])
POSTFIX_FILES = ("/etc/postfix/sasl_passwd", "/etc/postfix/sasl_passwd.db",
                 "/etc/postfix/sasl_passwd.lmdb", "/etc/postfix/hub_clients",
                 CLIENT_KEY_PATH, CLIENT_CERT_PATH)
POSTFIX_DIRS = ("/etc/postfix/hub-tls",)
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")


class QueuedMessages(FactBase):
    """How many messages Postfix's queues hold (0 without Postfix). 3"""

    def command(self) -> str:
        folders = " ".join(f"/var/spool/postfix/{q}" for q in QUEUES)
        return f"find {folders} -type f 2>/dev/null | wc -l"

    @staticmethod
    def default() -> int:
        return 0

    def process(self, output) -> int:
        return int(output[-1].strip()) if output and output[-1].strip().isdigit() else 0


@deploy("Remove mailagent")
def remove():
    platform = platform_of(host)
    queued = host.get_fact(QueuedMessages)
    if queued and not flag(host, "remove_force"):
        raise DeployError(f"{host.name}: {queued} message(s) still queued, nothing was changed; "
                          "drain the host first (mailagent drain) or pass --data remove_force=true")
    remove_agent()
    if flag(host, "remove_postfix"):
        remove_postfix(platform.family)


def remove_agent() -> None:
    systemd.service(name="Stop and disable mailagent", service="mailagent", running=False,
                    enabled=False)
    for unit in ("mailagent-queue-count.socket", "mailagent-queue-count.service"):
        systemd.service(name=f"Stop and disable {unit}", service=unit, running=False, enabled=False)
    _remove(AGENT_FILES, AGENT_DIRS)
    systemd.daemon_reload(name="Reload systemd units")
    server.user(name=f"Remove the {USER} system user", user=USER, present=False)
    server.group(name=f"Remove the {USER} group", group=USER, present=False)


def remove_postfix(family: str) -> None:
    systemd.service(name="Stop postfix", service="postfix", running=False, enabled=False)
    if family == "rhel":
        dnf.packages(name="Remove postfix", packages=["postfix"], present=False)
    else:
        apt.packages(name="Purge postfix", packages=["postfix"], present=False, purge=True)
    _remove(POSTFIX_FILES, POSTFIX_DIRS)


def _remove(paths: tuple[str, ...], folders: tuple[str, ...]) -> None:
    for path in paths:
        files.file(name=f"Remove {path}", path=path, present=False)
    for folder in folders:
        files.directory(name=f"Remove {folder}", path=folder, present=False)
