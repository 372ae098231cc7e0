"""The "application" of bench/relay_throughput.py: runs ON a lab VM, sends mail, times each send.

Standard library only (the guest has python3 and nothing else of ours). It reads its settings
as one JSON object on stdin (so the smarthost password never shows in a process list):

    {"mode": "local" | "direct", "count": 2000, "prefix": "run-ours", "sender": "...",
     "recipient": "...", "body_bytes": 1024,
     # direct only: the smarthost, the way an application without a local relay would send
     "host": "sink.lab.mailagent.test", "port": 2587, "username": "...", "password": "...",
     "ca_file": "/etc/postfix/relay-ca.pem"}

`local` submits each message on its own connection to the local Postfix (127.0.0.1:25);
`direct` opens one connection per message to the smarthost, STARTTLS (certificate checked
against `ca_file`), AUTH, sends, QUIT. Each latency covers connect to QUIT.

Output: the line `started` (flushed) right before the first connection, so the caller can time
from the first submit with its own clock; then one JSON line {"latencies": [s, ...],
"errors": {"ExceptionName: text": count}, "seconds": total}. A failed send is counted, not fatal.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage
from email.utils import formatdate

DOMAIN = "bench.lab.mailagent.test"


def build_message(settings: dict, index: int) -> EmailMessage:
    """Message number `index` of the batch; its Message-ID is what the sink counts by."""
    message = EmailMessage()
    message["From"] = settings["sender"]
    message["To"] = settings["recipient"]
    message["Subject"] = f"relay throughput {settings['prefix']} #{index}"
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = f"<{settings['prefix']}.{index}@{DOMAIN}>"
    message.set_content(("x" * 75 + "\n") * max(1, settings.get("body_bytes", 1024) // 76))
    return message


def send_local(settings: dict, message: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", 25, local_hostname="localhost", timeout=60) as smtp:
        smtp.send_message(message)


def send_direct(settings: dict, message: EmailMessage, context: ssl.SSLContext) -> None:
    with smtplib.SMTP(settings["host"], settings["port"], local_hostname="localhost", timeout=60) as smtp:
        smtp.starttls(context=context)
        smtp.login(settings["username"], settings["password"])
        smtp.send_message(message)


def run(settings: dict) -> dict:
    """Send the batch one message at a time; the latencies of the sends that worked."""
    if settings["mode"] == "direct":
        context = ssl.create_default_context(cafile=settings["ca_file"])
        send = lambda message: send_direct(settings, message, context)
    else:
        send = lambda message: send_local(settings, message)
    messages = [build_message(settings, index) for index in range(settings["count"])]
    latencies, errors = [], {}
    print("started", flush=True)
    began = time.monotonic()
    for message in messages:
        started = time.monotonic()
        try:
            send(message)
        except (OSError, smtplib.SMTPException) as exc:
            key = f"{type(exc).__name__}: {exc}"[:200]
            errors[key] = errors.get(key, 0) + 1
            continue
        latencies.append(time.monotonic() - started)
    return {"latencies": latencies, "errors": errors, "seconds": time.monotonic() - began}


def main() -> int:
    settings = json.loads(sys.stdin.read())
    print(json.dumps(run(settings)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
