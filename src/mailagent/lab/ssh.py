"""Commands on lab VMs as root over SSH (paramiko, the lab key, the VM's forwarded port).

VMs get fresh host keys on every new lab, so host keys are neither checked nor remembered:
the forwarded port on 127.0.0.1 is the identity here.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Sequence

import paramiko

from mailagent.lab import state as lab_state

# A booting VM makes paramiko's transport thread log banner errors on every probe; they are
# expected, and the caller reports the outcome, so keep them off stderr (the library way).
logging.getLogger("paramiko.transport").addHandler(logging.NullHandler())


def connect(state: dict, name: str, timeout: float = 10.0) -> paramiko.SSHClient:
    """An open SSH session to VM `name` as root (the caller closes it)."""
    entry = lab_state.host(state, name)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        client.connect(
            entry["ssh_host"], port=entry["ssh_port"], username="root",
            pkey=paramiko.Ed25519Key.from_private_key_file(entry["ssh_key"]),
            look_for_keys=False, allow_agent=False,
            timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
        )
    except BaseException:
        client.close()
        raise
    return client


def run(state: dict, name: str, cmd: str | Sequence[str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Run `cmd` (a shell string, or argv that gets quoted) on VM `name`: (rc, stdout, stderr).

    Raises TimeoutError when the command has not finished within `timeout` seconds.
    """
    command = cmd if isinstance(cmd, str) else shlex.join(cmd)
    deadline = time.monotonic() + timeout
    client = connect(state, name, timeout=min(timeout, 30.0))
    try:
        channel = client.get_transport().open_session(timeout=min(timeout, 30.0))
        channel.exec_command(command)
        out, err = bytearray(), bytearray()
        # Read both streams as they come, so a chatty command cannot fill one and stall.
        while not (channel.exit_status_ready() and not channel.recv_ready() and not channel.recv_stderr_ready()):
            if channel.recv_ready():
                out += channel.recv(65536)
            elif channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{name}: `{command}` did not finish within {timeout:.0f}s")
            else:
                time.sleep(0.02)
        return channel.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        client.close()


def answers(state: dict, name: str, timeout: float = 10.0) -> bool:
    """True when VM `name` takes an SSH login and runs a command (used while it boots)."""
    try:
        client = connect(state, name, timeout=timeout)
    except (paramiko.SSHException, OSError, EOFError):
        return False
    try:
        _, stdout, _ = client.exec_command("true", timeout=timeout)
        return stdout.channel.recv_exit_status() == 0
    except (paramiko.SSHException, OSError, EOFError):
        return False
    finally:
        client.close()
