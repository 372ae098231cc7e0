"""Check a smarthost the way Postfix will use it: connect, EHLO, TLS, AUTH, QUIT (nothing sent).

Standard library only: the deploy uploads this one file and runs it on the target before the
mailagent package is installed there. The password is read from the root-only sasl_passwd map, so
it never appears on a command line or in the deploy's output.

    python3 check.py --host smtp.sendgrid.net --port 2525 --tls starttls --verify verify \
        --ca-file /etc/ssl/certs/ca-certificates.crt --sasl-map /etc/postfix/sasl_passwd
"""

from __future__ import annotations

import argparse
import json
import smtplib
import socket
import ssl
import sys
import time

# Reply codes (and enhanced status codes) users meet, most specific first.
HINTS = (
    ("534 5.7.9", "Gmail wants an App Password (turn on 2-Step Verification, then make one)"),
    ("5.7.139", "Office 365 has SMTP AUTH turned off for this tenant or mailbox; enable it"),
    ("5.7.30", "Microsoft 365 no longer takes a password (Basic auth) for SMTP AUTH: use provider "
     "office365_connector, an OAuth-capable path or another provider"),
    ("535", "wrong credentials: the smarthost refused the user name or password"),
    ("530 5.7.0", "the smarthost wants STARTTLS or authentication before this command"),
    ("554 5.7.1", "relay access denied: the smarthost does not accept mail from this sender/host"),
    ("454 4.7.0", "temporary TLS or authentication failure at the smarthost; retry later"),
    ("454 4.7.1", "relay access denied: authentication did not happen (check TLS and credentials)"),
    ("421", "the smarthost is closing connections (throttling or maintenance); mail will retry"),
    ("451", "temporary failure at the smarthost (throttled?); mail will retry"),
    ("554", "rejected; on Amazon SES in the sandbox only verified addresses may be used"),
)
BLOCKED_PORTS = (25, 465, 587)


class CheckFailed(Exception):
    def __init__(self, step: str, message: str, code: int | None = None):
        super().__init__(message)
        self.step, self.code = step, code


# Failures without a reply code: (what the user sees, test on (code, message, port), hint).
SITUATIONS = (
    ("timeout on 25, 465 or 587", lambda code, message, port: code is None and "timed out" in message
     and port in BLOCKED_PORTS,
     "timed out on a port cloud networks often block: use the provider's 2525, 2587 (STARTTLS) "
     "or 2465 (implicit TLS)"),
    ("timeout on another port", lambda code, message, port: code is None and "timed out" in message,
     "timed out: a firewall drops the connection, or the smarthost is down"),
    ("connection refused", lambda code, message, port: code is None and "refused" in message,
     "connection refused: nothing listens there (wrong host/port, or smarthost down)"),
    ("certificate verify failed", lambda code, message, port: "CERTIFICATE_VERIFY_FAILED" in message
     or "certificate" in message.lower(),
     "the smarthost's certificate was not trusted for this name (tls_verify, ca_file)"),
    ("no STARTTLS offered", lambda code, message, port: "does not offer STARTTLS" in message,
     "no STARTTLS offered (a port without it, or something on the path strips it): Postfix keeps "
     "the mail queued and sends no password; use the provider's STARTTLS port or tls = implicit"),
)


def hint_for(code: int | None, message: str, port: int, extra: dict | None = None) -> str:
    text = f"{code or ''} {message}"
    for needle, hint in list((extra or {}).items()) + list(HINTS):
        if needle in text or (code is not None and needle == str(code)):
            return hint
    for _seen, matches, hint in SITUATIONS:
        if matches(code, message, port):
            return hint
    return ""


def read_credentials(path: str, key: str) -> tuple[str, str] | None:
    """Find `key` in a Postfix sasl_passwd source map; the value splits at the first ':'."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip().startswith("#") or not line.strip():
                continue
            name, _, value = line.strip().partition(" ")
            if name == key:
                user, _, password = value.strip().partition(":")
                return user, password
    return None


def tls_context(verify: str, ca_file: str | None) -> ssl.SSLContext:
    if verify == "encrypt":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class RelayCheck:
    """One check run; `steps` records each step with its duration for the report."""

    def __init__(self, host, port, tls, verify, ca_file, credentials, timeout):
        self.host, self.port, self.tls, self.verify = host, port, tls, verify
        self.ca_file, self.credentials, self.timeout = ca_file, credentials, timeout
        self.steps: list[dict] = []
        self.smtp: smtplib.SMTP | None = None

    def step(self, name: str, action):
        started = time.monotonic()
        try:
            detail = action()
        except smtplib.SMTPResponseException as exc:
            raise CheckFailed(name, _text(exc.smtp_error), exc.smtp_code) from None
        except (OSError, ValueError, smtplib.SMTPException, ssl.SSLError) as exc:
            raise CheckFailed(name, str(exc) or type(exc).__name__) from None
        self.steps.append({"step": name, "seconds": round(time.monotonic() - started, 3),
                           "detail": detail or ""})

    def run(self) -> None:
        context = tls_context(self.verify, self.ca_file) if self.tls != "none" else None
        self.step("connect", lambda: self._connect(context))
        self.step("ehlo", self._ehlo)
        if self.tls == "starttls":
            self.step("starttls", lambda: self._starttls(context))
        if self.credentials:
            self.step("auth", self._auth)
        self.step("quit", lambda: self.smtp.quit() and "")

    def _connect(self, context):
        if self.tls == "implicit":
            self.smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            return f"implicit TLS {self.smtp.sock.version()}"
        self.smtp = smtplib.SMTP(timeout=self.timeout)
        self.smtp._host = self.host  # the name STARTTLS verifies; connect() does not set it
        code, banner = self.smtp.connect(self.host, self.port)
        if code != 220:
            raise smtplib.SMTPResponseException(code, banner)
        return _text(banner)

    def _ehlo(self):
        code, reply = self.smtp.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)
        return ", ".join(sorted(self.smtp.esmtp_features))

    def _starttls(self, context):
        if not self.smtp.has_extn("starttls"):
            raise CheckFailed("starttls", "the smarthost does not offer STARTTLS")
        self.smtp.starttls(context=context)
        self.smtp.ehlo()
        return self.smtp.sock.version()

    def _auth(self):
        if not self.smtp.has_extn("auth"):
            raise CheckFailed("auth", "the smarthost offers no AUTH after TLS")
        user, password = self.credentials
        code, reply = self.smtp.login(user, password)
        return f"{code} {_text(reply)} as {user}"


def check_relay(host, port, tls, username=None, password=None, ca_file=None, timeout=15.0,
                verify="verify", hints=None) -> dict:
    """Run the check; return {ok, step, code, message, hint, elapsed_seconds, steps}."""
    credentials = (username, password) if username else None
    check = RelayCheck(host, port, tls, verify, ca_file, credentials, timeout)
    started = time.monotonic()
    result = {"ok": True, "step": "quit", "code": None, "message": "", "hint": ""}
    try:
        check.run()
    except CheckFailed as exc:
        result = {"ok": False, "step": exc.step, "code": exc.code, "message": str(exc),
                  "hint": hint_for(exc.code, str(exc), port, hints)}
    finally:
        _close(check.smtp)
    result.update(elapsed_seconds=round(time.monotonic() - started, 3), steps=check.steps,
                  host=host, port=port, tls=tls)
    return result


def format_result(result: dict) -> str:
    lines = [f"{s['step']:>9}  {s['seconds']:6.3f}s  {s['detail']}" for s in result["steps"]]
    where = f"{result['host']}:{result['port']} ({result['tls']})"
    if result["ok"]:
        done = "TLS and AUTH" if any(s["step"] == "auth" for s in result["steps"]) else \
            "TLS (no AUTH configured)"
        lines.append(f"ok: {where} accepted {done} in {result['elapsed_seconds']}s")
    else:
        code = f"{result['code']} " if result["code"] else ""
        lines.append(f"FAILED at {result['step']}: {where}: {code}{result['message']}")
        if result["hint"]:
            lines.append(f"hint: {result['hint']}")
    return "\n".join(lines)


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _close(smtp) -> None:
    if smtp is not None and smtp.sock is not None:
        try:
            smtp.close()
        except OSError:
            pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls", choices=("starttls", "implicit", "none"), required=True)
    parser.add_argument("--verify", choices=("encrypt", "verify", "secure"), default="verify")
    parser.add_argument("--ca-file")
    parser.add_argument("--sasl-map", help="sasl_passwd source map holding the credentials")
    parser.add_argument("--sasl-key", help="their key in the map (default: [host]:port; a sender "
                        "route's: its first sender, @example.com)")
    parser.add_argument("--timeout", type=float, default=15.0)
    parser.add_argument("--hints-json", default="{}", help="provider-specific hints by reply")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    credentials = None
    if args.sasl_map:
        key = args.sasl_key or f"[{args.host}]:{args.port}"
        credentials = read_credentials(args.sasl_map, key)
        if credentials is None:
            print(f"no credentials for {key} in {args.sasl_map}", file=sys.stderr)
            return 2
    user, password = credentials or (None, None)
    result = check_relay(args.host, args.port, args.tls, user, password, args.ca_file,
                         args.timeout, args.verify, json.loads(args.hints_json))
    print(json.dumps(result) if args.json else format_result(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    socket.setdefaulttimeout(60)
    sys.exit(main())
