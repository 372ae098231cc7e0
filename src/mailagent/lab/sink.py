"""The lab's smarthost sink: a real TLS+AUTH SMTP server standing in for SendGrid or SES.

Python API (what `mailagent lab up/down` calls): `spawn`, `stop`, `set_mode`, `set_logins`,
`messages`, `auth_attempts`, `connections`, `status`. The daemon itself is
`python -m mailagent.lab.sink_daemon serve --dir LAB_DIR/sink ...`; `spawn` starts it in its own
session (so a terminal's Ctrl-C or the caller's exit leaves it running) and returns once every
port listens; `stop` reaps it when the caller is its parent. What it keeps on disk: see `sink_store`.

Errors: `SinkError` (the daemon did not start, or a port is taken), ValueError for a bad mode.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
from pathlib import Path

from mailagent.lab import sink_store as store

DEFAULT_HOSTNAME = "sink.lab.mailagent.test"
DAEMON = "mailagent.lab.sink_daemon"  # run as `python -m DAEMON serve ...`
# The sink is reached from guests as QEMU user networking's host alias, and from the host itself.
CERT_IPS = ["10.0.2.2", "127.0.0.1"]
START_TIMEOUT = 30.0
READY_FD = 3
STOP_TIMEOUT = 10.0


class SinkError(RuntimeError):
    """The sink daemon could not be started (the message carries its own error output)."""


def spawn(lab_dir: Path, *, bind: str = "127.0.0.1", hostname: str = DEFAULT_HOSTNAME,
          starttls_ports=(2525, 2587), implicit_ports=(2465,)) -> dict:
    """Start the sink for `lab_dir` (or keep the one running with this same configuration).

    Port 0 picks a free port; the ports really used are returned and kept in config.json.
    The CA and credentials already in `<lab_dir>/sink` are reused.
    """
    sdir = store.sink_dir(lab_dir)
    sdir.mkdir(parents=True, exist_ok=True)
    creds = store.ensure_credentials(sdir)
    tls = store.ensure_tls(sdir, hostname, CERT_IPS)
    wanted = {"bind": bind, "hostname": hostname, "starttls": list(starttls_ports), "implicit": list(implicit_ports)}
    running = _running(sdir)
    if running and _same(running, wanted):
        return _info(sdir, running, creds, tls)
    stop(lab_dir)
    runtime = _launch(sdir, wanted)
    store.write_json(sdir / "config.json", {
        "bind": bind, "hostname": hostname,
        "starttls_ports": runtime["ports"]["starttls"], "implicit_ports": runtime["ports"]["implicit"],
    })
    return _info(sdir, runtime, creds, tls)


def _same(runtime: dict, wanted: dict) -> bool:
    ports = runtime["ports"]
    fixed = all(p != 0 for p in wanted["starttls"] + wanted["implicit"])
    return (runtime["bind"], runtime["hostname"]) == (wanted["bind"], wanted["hostname"]) and fixed and (
        ports["starttls"] == wanted["starttls"] and ports["implicit"] == wanted["implicit"]
    )


def _info(sdir: Path, runtime: dict, creds: dict, tls: dict) -> dict:
    return {
        "pid": runtime["pid"], "bind": runtime["bind"], "hostname": runtime["hostname"],
        "ports": runtime["ports"], "username": creds["username"], "password": creds["password"],
        "ca_cert": tls["ca_cert"], "mail_log": str(sdir / store.MAIL_LOG),
    }


def _launch(sdir: Path, wanted: dict) -> dict:
    """Start `serve` in its own session and wait for it to write "ready" (or why not) on a pipe."""
    cmd = [sys.executable, "-m", DAEMON, "serve", "--dir", str(sdir),
           "--ready-fd", str(READY_FD), "--bind", wanted["bind"], "--hostname", wanted["hostname"]]
    cmd += [a for p in wanted["starttls"] for a in ("--starttls-port", str(p))]
    cmd += [a for p in wanted["implicit"] for a in ("--implicit-port", str(p))]
    read_end, write_end = _pipe_avoiding(READY_FD)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(sdir / "sink.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
        (os.POSIX_SPAWN_DUP2, write_end, READY_FD),  # dup2 clears close-on-exec on the copy only
    ]
    try:
        # posix_spawn, not Popen: the daemon outlives any Popen object we could keep.
        pid = os.posix_spawn(sys.executable, cmd, dict(os.environ), file_actions=actions, setsid=True)
    finally:
        os.close(write_end)
    said = _read_all(read_end, START_TIMEOUT)
    if said != "ready":
        _terminate(pid)
        raise SinkError(f"the sink did not start: {said or 'no answer'} (log: {sdir / 'sink.log'})")
    return store.read_json(sdir / "runtime.json")


def _pipe_avoiding(fd: int) -> tuple[int, int]:
    """os.pipe(), but with a write end that is not `fd` itself (dup2 onto itself keeps CLOEXEC)."""
    read_end, write_end = os.pipe()
    if write_end == fd:
        write_end = os.dup(fd)
        os.close(fd)
    return read_end, write_end


def _read_all(fd: int, timeout: float) -> str:
    """Everything written to `fd` until the writer closes it, or what came before `timeout`."""
    deadline, chunks = time.monotonic() + timeout, []
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while (left := deadline - time.monotonic()) > 0 and select.select([pipe], [], [], left)[0]:
            chunk = pipe.read(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").strip()


def stop(lab_dir: Path) -> None:
    """SIGTERM the sink, wait, SIGKILL after STOP_TIMEOUT; nothing to do when it is not running."""
    sdir = store.sink_dir(lab_dir)
    runtime = _running(sdir)
    if runtime:
        _terminate(runtime["pid"])
    for name in ("sink.pid", "runtime.json"):
        (sdir / name).unlink(missing_ok=True)


def set_mode(lab_dir: Path, mode: str) -> None:
    """normal | tempfail | reject-auth | no-starttls; takes effect on the next SMTP command
    (no-starttls: on the next EHLO). ValueError otherwise."""
    store.write_mode(store.sink_dir(lab_dir), mode)


def set_logins(lab_dir: Path, logins: dict[str, str]) -> None:
    """Accept these {username: password} logins besides the lab's own, from the next AUTH on
    (`{}` removes them). Each message's record names the login it came with (`auth_user`)."""
    store.write_logins(store.sink_dir(lab_dir), logins)


def messages(lab_dir: Path) -> list[dict]:
    """Every message the sink accepted, oldest first."""
    return store.read_lines(store.sink_dir(lab_dir) / store.MAIL_LOG)


def auth_attempts(lab_dir: Path) -> list[dict]:
    """Every AUTH attempt (user, mechanism, tls, success), oldest first."""
    return store.read_lines(store.sink_dir(lab_dir) / store.AUTH_LOG)


def connections(lab_dir: Path) -> list[dict]:
    """Every finished connection, with whether TLS completed, oldest first."""
    return store.read_lines(store.sink_dir(lab_dir) / store.CONN_LOG)


def status(lab_dir: Path) -> dict:
    """{"running", "pid", "ports", "mode", "messages", ...} for `lab sink status`."""
    sdir = store.sink_dir(lab_dir)
    runtime = _running(sdir) or {}
    return {
        "running": bool(runtime), "pid": runtime.get("pid"), "bind": runtime.get("bind"),
        "hostname": runtime.get("hostname"), "ports": runtime.get("ports"), "mode": store.read_mode(sdir),
        "messages": len(messages(lab_dir)), "config": store.read_json(sdir / "config.json"),
    }


def _running(sdir: Path) -> dict | None:
    """The running daemon's runtime record, or None (a stale record is ignored)."""
    runtime = store.read_json(sdir / "runtime.json")
    if runtime and _alive(runtime["pid"]) and _is_sink(runtime["pid"]):
        return runtime
    return None


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _is_sink(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that is our daemon."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return DAEMON.encode() in cmdline and b"serve" in cmdline


def _terminate(pid: int) -> None:
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, STOP_TIMEOUT):
        _signal(pid, signal.SIGKILL)
        _wait_gone(pid, STOP_TIMEOUT)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the exit status when the daemon is our own child, so it leaves no zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # started by another process; its parent (or init) reaps it


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)
