"""A tiny real HTTP collector on 127.0.0.1 for reporter tests: verifies signatures like the real one."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mailagent import signing
from mailagent.report import Report


class StubCollector:
    """Accepts signed reports; `status` forces a reply code; records what it accepted."""

    def __init__(self, public_keys: dict[str, str]):
        self.public_keys = public_keys
        self.accepted: list[Report] = []
        self.refused: list[str] = []
        self.nonces: set[str] = set()
        self.status: int | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def handle(self, headers, body: bytes) -> tuple[int, dict]:
        if self.status is not None:
            return self.status, {"detail": "forced"}
        host = headers.get(signing.H_HOST)
        try:
            signing.verify_request(self.public_keys.get(host), headers, body, now=time.time())
        except signing.SigningError as exc:
            self.refused.append(type(exc).__name__)
            return 401, {"detail": str(exc)}
        nonce = headers.get(signing.H_NONCE)
        if nonce in self.nonces:
            return 409, {"detail": "replay"}
        self.nonces.add(nonce)
        report = Report.from_wire(body)
        if report.host != host:
            return 403, {"detail": "host mismatch"}
        duplicate = any(r.report_id == report.report_id for r in self.accepted)
        if not duplicate:
            self.accepted.append(report)
        return 200, {"duplicate": duplicate}

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code, payload = stub.handle(self.headers, body) if self.path == "/api/v1/reports" \
                    else (404, {})
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler
