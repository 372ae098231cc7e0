"""The queue counter: a tiny service that counts Postfix's queue folders for the agent.

Postfix's queue folders are postfix-owned 0700, so counting them by readdir takes the postfix
identity, root, or CAP_DAC_READ_SEARCH, and that capability reads every file on the host
(/etc/shadow, the smarthost password). The agent talks to the network, so it must not hold it.
This helper holds it instead, and has nothing else: no network (PrivateNetwork=yes), no input
but the word `count`, no path from its client; it answers with the counts as one JSON line.

    client -> count\\n
    helper -> {"maildrop": 0, "incoming": 0, "active": 1, "deferred": 5, "hold": 0}\\n
    helper -> {"error": "PermissionError: [Errno 13] Permission denied: '/var/spool/postfix/active'"}\\n

Why not ACLs on the queue folders for the agent user: Postfix makes hashed sub-folders with
mkdir 0700 while it runs and `postfix set-permissions` (run by package upgrades) chmods the
folders, both of which set the ACL mask to --- and silence a named-user entry, so the counts
would fail between a Postfix change and the next re-apply. A helper keeps working whatever Postfix
does to its folders, and the capability stays in a process that only lists directories.

systemd owns the socket (mailagent-queue-count.socket: root:mailagent 0660, so only the agent's
group may connect) and hands it over at the first connection; the helper then stays up and
answers one connection at a time. `--listen PATH` binds a socket itself (tests, the benchmark).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.agent.queue_scan import count_folders

if TYPE_CHECKING:
    from mailagent.report import QueueCounts

SOCKET = Path("/run/mailagent-queue-count.sock")
REQUEST = b"count\n"
MAX_REQUEST = 64
MAX_REPLY = 4096
TIMEOUT = 5.0  # the helper's limit on a silent client
# The agent's limit on the answer. systemd accepts the connection at once but starts the helper
# only then: its Python start-up comes first (a second or two on an emulated CPU with a cold page
# cache, which the agent's first cycle after a deploy meets).
ANSWER_TIMEOUT = 30.0
SD_LISTEN_FDS_START = 3


class QueueCounterError(RuntimeError):
    """The helper answered with an error, or with something that is not counts."""


def answer(request: bytes, spool: Path) -> bytes:
    """The reply to one request: the counts, or an error; never raises."""
    if request.strip() != REQUEST.strip():
        return _line({"error": "unknown request (the only one is 'count')"})
    try:
        return _line(count_folders(spool))
    except OSError as exc:
        return _line({"error": f"{type(exc).__name__}: {exc}"})


def _line(data: dict) -> bytes:
    return json.dumps(data).encode() + b"\n"


def serve(listener: socket.socket, spool: Path) -> None:
    """Answer connections one at a time until the listener is closed."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(TIMEOUT)  # a silent client cannot hold the helper
            try:
                conn.sendall(answer(_read(conn, MAX_REQUEST), spool))
            except OSError:
                continue


def _read(conn: socket.socket, limit: int) -> bytes:
    """Up to `limit` bytes, up to the first newline or the peer's end of stream."""
    data = b""
    while b"\n" not in data and len(data) < limit:
        chunk = conn.recv(limit - len(data))
        if not chunk:
            break
        data += chunk
    return data


def ask(path: Path = SOCKET, timeout: float = ANSWER_TIMEOUT) -> QueueCounts:
    """The counts from the helper at `path` (one connection, one line each way)."""
    # Imported here, not at the top: the helper itself imports this module, and pydantic would
    # slow its start (it starts at the agent's first connection); only the client needs it.
    from mailagent.report import QueueCounts

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(str(path))
        conn.sendall(REQUEST)
        reply = _read(conn, MAX_REPLY)
    try:
        data = json.loads(reply)
    except ValueError:
        raise QueueCounterError(f"queue counter at {path}: not JSON: {reply[:200]!r}") from None
    if not isinstance(data, dict):
        raise QueueCounterError(f"queue counter at {path}: not counts: {data!r:.200}")
    if "error" in data:
        raise QueueCounterError(f"queue counter at {path}: {data['error']}")
    return QueueCounts(**data)


def systemd_listener(env=os.environ) -> socket.socket:
    """The one socket systemd passed (sd_listen_fds: LISTEN_PID is us, LISTEN_FDS=1, fd 3)."""
    if env.get("LISTEN_PID") != str(os.getpid()) or env.get("LISTEN_FDS") != "1":
        raise SystemExit("mailagent-queue-count: no socket from systemd "
                         "(start mailagent-queue-count.socket, or pass --listen PATH)")
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def bound_listener(path: Path) -> socket.socket:
    """A socket of our own at `path`, owner and group read-write."""
    path.unlink(missing_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    path.chmod(0o660)
    listener.listen(16)
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailagent-queue-count", description=__doc__.splitlines()[0])
    parser.add_argument("--spool", type=Path, default=Path("/var/spool/postfix"),
                        help="Postfix's queue_directory")
    parser.add_argument("--listen", type=Path, help="bind this socket instead of systemd's")
    args = parser.parse_args(argv)
    listener = bound_listener(args.listen) if args.listen else systemd_listener()
    with listener:
        serve(listener, args.spool)
    return 0


if __name__ == "__main__":
    sys.exit(main())
