"""Run a command under a deadline, streaming its stdout lines; never hangs the cycle."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Sequence


class CommandFailed(Exception):
    """The command could not start or exited non-zero."""


def stream_lines(argv: Sequence[str], on_line: Callable[[str], None], deadline_seconds: float,
                 env: dict[str, str] | None = None) -> bool:
    """Feed each stdout line to `on_line`; return False when the deadline cut the output short.

    The child runs in its own process group so a timed-out command and its helpers all go.
    """
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError as exc:
        raise CommandFailed(f"{argv[0]}: {exc.strerror}") from None
    complete = _pump(proc, on_line, time.monotonic() + deadline_seconds)
    if not complete:
        _kill(proc)
        return False
    err = proc.stderr.read().decode(errors="replace").strip()
    if proc.wait() != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}: {err[:500]}")
    return True


def _pump(proc: subprocess.Popen, on_line, until: float) -> bool:
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    buf = b""
    fd = proc.stdout.fileno()
    try:
        while (left := until - time.monotonic()) > 0:
            if not sel.select(timeout=left):
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                if buf:
                    on_line(buf.decode(errors="replace"))
                return True
            *lines, buf = (buf + chunk).split(b"\n")
            for line in lines:
                on_line(line.decode(errors="replace"))
        return False
    finally:
        sel.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()


def run(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run to completion with a timeout; CommandFailed when it cannot start or times out."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandFailed(f"{argv[0]}: {exc}") from None
