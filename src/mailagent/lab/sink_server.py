"""The sink's SMTP conversation: AUTH (PLAIN, LOGIN, CRAM-MD5) over TLS, modes, and when to record.

`SinkHandler` holds what is shared by every connection (the sink folder, whose logins it reads
on every AUTH: the lab's own and any a test added with `sink.set_logins`) and
answers the aiosmtpd hooks; `SinkSMTP` is one connection, remembering what its record needs
(port, TLS, login) and writing it when the connection ends; `ImplicitTLSAcceptor` does the
TLS handshake of an SMTPS port itself, so a client that refuses our certificate still leaves
a connection record (asyncio's own TLS server would drop it without a word). Record shapes:
`sink_records`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import secrets
import ssl
import warnings
from pathlib import Path

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, auth_mechanism

from mailagent.lab import sink_store as store
from mailagent.lab.sink_records import connection_record, header_summary, now, tls_of

IDENT = "mailagent lab sink"
TEMPFAIL = "451 4.7.1 Try again later (the lab sink is in tempfail mode)"
NO_TLS = "454 4.7.0 TLS not available (the lab sink is in no-starttls mode)"
HANDSHAKE_TIMEOUT = 20.0


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """The sink's TLS: our lab certificate, TLS 1.2 or newer, no client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


class SinkHandler:
    """aiosmtpd hooks shared by all connections: credentials, modes, records."""

    def __init__(self, sdir: Path, hostname: str) -> None:
        self.sdir = sdir
        self.hostname = hostname
        store.read_credentials(sdir)  # fail at start, not at the first AUTH, when they are missing

    def mode(self) -> str:
        return store.read_mode(self.sdir)

    def record_auth(self, server: SinkSMTP, user: str | None, mechanism: str, success: bool, **extra) -> None:
        """One line per AUTH attempt in auth.jsonl (never the password or its digest)."""
        rec = {"at": now(), "user": user, "mechanism": mechanism, "success": success}
        rec |= {"tls": server.tls["tls"], "port": server.port, "peer": server.peer_host, "peer_port": server.peer_port}
        store.append(self.sdir / store.AUTH_LOG, rec | extra)
        server.auth_attempts += 1

    def _verdict(self, server: SinkSMTP, mechanism: str, user: str, ok: bool) -> AuthResult:
        extra = {}
        if self.mode() == "reject-auth":  # the provider says no whatever was sent, as for a revoked key
            ok, extra = False, {"error": "reject-auth mode"}
        self.record_auth(server, user, mechanism, ok, **extra)
        if not ok:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data={"user": user, "mechanism": mechanism})

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        """aiosmtpd's authenticator for its built-in PLAIN and LOGIN."""
        user = auth_data.login.decode(errors="replace")
        ok = self._check(auth_data.login, auth_data.password)
        return self._verdict(server, mechanism, user, ok)

    def _check(self, user: bytes, password: bytes) -> bool:
        return hmac.compare_digest(password, self._password_of(user).encode())

    def _password_of(self, user: bytes) -> str:
        """The password `user` logs in with; for an unknown user one no client can send."""
        logins = store.read_logins(self.sdir)
        return logins.get(user.decode(errors="replace"), "\0" + secrets.token_hex(16))

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, server: SinkSMTP, args: list[str]) -> AuthResult:
        """RFC 2195: challenge, then `user hex(HMAC-MD5(password, challenge))`."""
        challenge = f"<{secrets.token_hex(8)}.{int(dt.datetime.now().timestamp())}@{self.hostname}>".encode()
        reply = await server.challenge_auth(challenge)
        if reply is MISSING:  # '*' or bad base64: aiosmtpd already answered 501
            self.record_auth(server, None, "CRAM-MD5", False, error="aborted")
            return AuthResult(success=False, handled=True)
        user, _, digest = reply.decode(errors="replace").rpartition(" ")
        expected = hmac.new(self._password_of(user.encode()).encode(), challenge, hashlib.md5).hexdigest()
        ok = hmac.compare_digest(digest.lower().encode(), expected.encode())
        return self._verdict(server, "CRAM-MD5", user, ok)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        """In no-starttls mode a STARTTLS port does not offer STARTTLS (nor, as before TLS
        always, AUTH): a smarthost whose TLS is broken or stripped on the way. PIPELINING is
        offered, as every provider the sink stands in for does (aiosmtpd reads pipelined
        commands in order; without it each MAIL, RCPT and DATA costs a round trip of its own)."""
        session.host_name = hostname
        if self.mode() == "no-starttls":
            responses = [line for line in responses if line != "250-STARTTLS"]
        return responses[:-1] + ["250-PIPELINING"] + responses[-1:]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mode() == "tempfail":
            return TEMPFAIL
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode() == "tempfail":
            return TEMPFAIL
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SinkSMTP, session, envelope):
        if self.mode() == "tempfail":
            return TEMPFAIL
        msg_id = secrets.token_hex(6).upper()
        store.append(self.sdir / store.MAIL_LOG, self.message_record(server, session, envelope, msg_id))
        server.messages += 1
        return f"250 2.0.0 OK queued as {msg_id}"

    def message_record(self, server: SinkSMTP, session, envelope, msg_id: str) -> dict:
        auth = session.auth_data or {}
        return {
            "id": msg_id, "received_at": now(), "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos), "headers": header_summary(envelope.original_content),
            "size": len(envelope.original_content), **server.tls,
            "auth_user": auth.get("user"), "auth_mechanism": auth.get("mechanism"),
            "port": server.port, "kind": server.kind, "peer": server.peer_host,
            "peer_port": server.peer_port, "helo": session.host_name,
        }


class SinkSMTP(SMTP):
    """One SMTP connection on a STARTTLS port (kind="starttls") or after an SMTPS handshake."""

    def __init__(self, handler: SinkHandler, *, kind: str, tls_context: ssl.SSLContext | None) -> None:
        with warnings.catch_warnings():
            # On an SMTPS port TLS is on before the first byte, which aiosmtpd cannot see, so
            # "AUTH needs TLS" is left to the port itself; silence its warning about that.
            warnings.simplefilter("ignore")
            super().__init__(
                handler, hostname=handler.hostname, ident=IDENT, auth_required=True,
                auth_require_tls=kind == "starttls", authenticator=handler.authenticate,
                tls_context=tls_context if kind == "starttls" else None,
            )
        self.kind, self.sdir = kind, handler.sdir
        self.sockname = self.peername = (None, None)
        self.opened_at, self.messages, self.auth_attempts, self.starttls_tried = now(), 0, 0, False
        self.tls = tls_of(None)
        self._connected = self._recorded = False

    @property
    def port(self) -> int | None:
        return self.sockname[1]

    @property
    def peer_host(self) -> str | None:
        return self.peername[0]

    @property
    def peer_port(self) -> int | None:
        return self.peername[1]

    def connection_made(self, transport) -> None:
        if not self._connected:  # the first call; STARTTLS calls it again on the TLS transport
            self._connected = True
            self.sockname = transport.get_extra_info("sockname")[:2]
            self.peername = transport.get_extra_info("peername")[:2]
        # Read now: by connection_lost the TLS transport has already let go of its SSL object.
        self.tls = tls_of(transport)
        super().connection_made(transport)

    async def smtp_STARTTLS(self, arg: str):
        self.starttls_tried = True
        if self.kind == "starttls" and self.event_handler.mode() == "no-starttls":
            await self.push(NO_TLS)  # a client that asks although it was not offered
            return
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg: str) -> None:
        if self.kind == "starttls" and self._tls_protocol is None and self.session.extended_smtp:
            # Refused below with 538; recorded so a test can see a client tried AUTH in clear.
            mech = (arg or "").split(" ")[0].upper() or None
            self.event_handler.record_auth(self, None, mech, False, error="encryption required")
        await super().smtp_AUTH(arg)

    def connection_lost(self, error: Exception | None) -> None:
        if self.session is None:  # lost before the SMTPS hand-over finished
            return
        self.record_connection(error)
        super().connection_lost(error)

    def record_connection(self, error: Exception | None) -> None:
        """One line per connection in connections.jsonl, written once when it ends."""
        if self._recorded:
            return
        self._recorded = True
        auth = self.session.auth_data or {}
        rec = connection_record(
            self.opened_at, self.kind, self.sockname, self.peername, self.tls, error,
            starttls=self.starttls_tried, auth_attempts=self.auth_attempts, auth_user=auth.get("user"),
            messages=self.messages,
        )
        store.append(self.sdir / store.CONN_LOG, rec)


class ImplicitTLSAcceptor(asyncio.Protocol):
    """An SMTPS port: handshake first (recording failures), then hand over to a SinkSMTP."""

    def __init__(self, handler: SinkHandler, ctx: ssl.SSLContext, tasks: set) -> None:
        self.handler, self.ctx, self.tasks = handler, ctx, tasks

    def connection_made(self, transport) -> None:
        transport.pause_reading()  # keep the ClientHello in the socket until the TLS layer is in
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handshake(self, transport) -> None:
        smtp = SinkSMTP(self.handler, kind="implicit", tls_context=None)
        sockname, peername = transport.get_extra_info("sockname"), transport.get_extra_info("peername")
        try:
            tls_transport = await asyncio.get_running_loop().start_tls(
                transport, smtp, self.ctx, server_side=True, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        except (OSError, asyncio.TimeoutError) as exc:  # ssl.SSLError and resets are OSErrors
            rec = connection_record(smtp.opened_at, "implicit", sockname, peername, tls_of(None), exc)
            store.append(self.handler.sdir / store.CONN_LOG, rec)
            transport.close()
            return
        smtp.connection_made(tls_transport)
