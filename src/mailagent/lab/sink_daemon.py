"""Running the sink as a process: listen on every port, say "ready", stop cleanly on SIGTERM.

`spawn` starts this in its own session with stdout/stderr on `sink.log` and a pipe as
`--ready-fd`: the daemon writes "ready" there once every port listens, or its error (a port
taken, a bad certificate) when it could not start, and closes it either way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path

from mailagent.lab import sink_store as store
from mailagent.lab.sink import CERT_IPS, DEFAULT_HOSTNAME
from mailagent.lab.sink_records import now
from mailagent.lab.sink_server import ImplicitTLSAcceptor, SinkHandler, SinkSMTP, server_context

log = logging.getLogger("mailagent.lab.sink")


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM; report readiness (or why not) on `args.ready_fd` when given."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pipe = os.fdopen(args.ready_fd, "w") if args.ready_fd is not None else None

    def ready() -> None:
        if pipe:
            pipe.write("ready")
            pipe.close()

    try:
        args.dir.mkdir(parents=True, exist_ok=True)
        return asyncio.run(serve(args, ready))
    except Exception as exc:
        log.exception("sink failed")
        if pipe and not pipe.closed:
            pipe.write(f"{type(exc).__name__}: {exc}")
            pipe.close()
        return 1


async def serve(args: argparse.Namespace, ready) -> int:
    """Listen on every port, write runtime.json and sink.pid, call `ready`, wait for SIGTERM."""
    sdir = args.dir
    store.ensure_credentials(sdir)
    tls = store.ensure_tls(sdir, args.hostname, CERT_IPS)
    # aiosmtpd logs each command (AUTH lines included) at INFO and deprecations at WARNING.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    ctx = server_context(tls["cert"], tls["key"])
    handler = SinkHandler(sdir, args.hostname)
    loop = asyncio.get_running_loop()
    tasks: set = set()
    servers = {"starttls": [], "implicit": []}
    for port in args.starttls_ports:
        factory = partial(SinkSMTP, handler, kind="starttls", tls_context=ctx)
        servers["starttls"].append(await loop.create_server(factory, args.bind, port))
    for port in args.implicit_ports:
        factory = partial(ImplicitTLSAcceptor, handler, ctx, tasks)
        servers["implicit"].append(await loop.create_server(factory, args.bind, port))
    ports = {kind: [s.sockets[0].getsockname()[1] for s in found] for kind, found in servers.items()}
    _write_runtime(sdir, args, ports)
    log.info("listening on %s: STARTTLS %s, SMTPS %s", args.bind, ports["starttls"], ports["implicit"])
    ready()
    await _until_signalled(loop)
    log.info("stopping")
    for server in servers["starttls"] + servers["implicit"]:
        server.close()
    _remove_runtime(sdir)
    return 0


def _write_runtime(sdir: Path, args: argparse.Namespace, ports: dict) -> None:
    runtime = {"pid": os.getpid(), "bind": args.bind, "hostname": args.hostname, "ports": ports, "started_at": now()}
    store.write_json(sdir / "runtime.json", runtime)
    (sdir / "sink.pid").write_text(f"{os.getpid()}\n")


def _remove_runtime(sdir: Path) -> None:
    runtime = store.read_json(sdir / "runtime.json")
    if runtime and runtime.get("pid") == os.getpid():  # a newer sink may already own them
        (sdir / "runtime.json").unlink(missing_ok=True)
        (sdir / "sink.pid").unlink(missing_ok=True)


async def _until_signalled(loop: asyncio.AbstractEventLoop) -> None:
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mailagent.lab.sink_daemon", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the sink in the foreground until SIGTERM")
    serve.add_argument("--dir", required=True, type=Path, help="the sink folder (<lab_dir>/sink)")
    serve.add_argument("--bind", default="127.0.0.1")
    serve.add_argument("--hostname", default=DEFAULT_HOSTNAME)
    serve.add_argument("--starttls-port", type=int, action="append", dest="starttls_ports")
    serve.add_argument("--implicit-port", type=int, action="append", dest="implicit_ports")
    serve.add_argument("--ready-fd", type=int, help="file descriptor to write 'ready' (or the error) to")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.starttls_ports = args.starttls_ports if args.starttls_ports is not None else [2525, 2587]
    args.implicit_ports = args.implicit_ports if args.implicit_ports is not None else [2465]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
