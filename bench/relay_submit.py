"""What bench/relay_throughput.py sends, and how an application's submit latency is timed.

Three ways in (each latency covers connect to QUIT, or the whole `sendmail` run):

* `smtp`: SMTP to the local Postfix on loopback, no TLS, no AUTH (what applications do);
* `sendmail`: the local Postfix's sendmail(1) with the message on stdin;
* `direct`: straight to the smarthost across the delayed link, STARTTLS (certificate checked),
  AUTH, one connection per message, the way an application without a local relay sends.
"""

from __future__ import annotations

import smtplib
import ssl
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from pathlib import Path

SENDER, RECIPIENT = "app@bench.lab.mailagent.test", "someone@example.com"


def build_message(message_id: str, body_bytes: int = 1024) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = SENDER, RECIPIENT
    message["Subject"] = f"relay throughput {message_id}"
    message["Message-ID"] = message_id
    message.set_content(("x" * 75 + "\n") * max(1, body_bytes // 76))
    return message.as_bytes(policy=policy.SMTP)  # CRLF line ends, as SMTP wants them


def inject(port: int, message_ids: list[str], workers: int = 4) -> None:
    """Send the batch on `workers` SMTP connections, many messages each (fast bulk submission)."""
    def send(share: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=120) as smtp:
            for message_id in share:
                smtp.sendmail(SENDER, [RECIPIENT], build_message(message_id))

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(send, [message_ids[n::workers] for n in range(workers)]))


@dataclass(frozen=True)
class Direct:
    """The smarthost as an application would be configured for it."""

    port: int
    username: str
    password: str
    ca_file: str


@dataclass
class Timings:
    seconds: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)


def submit_smtp(port: int, message: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost", timeout=60) as smtp:
        smtp.sendmail(SENDER, [RECIPIENT], message)


def submit_sendmail(etc: Path, message: bytes) -> None:
    subprocess.run(["sendmail", "-C", str(etc), "-f", SENDER, RECIPIENT], input=message, check=True,
                   timeout=60)


def submit_direct(direct: Direct, message: bytes, context: ssl.SSLContext) -> None:
    with smtplib.SMTP("127.0.0.1", direct.port, local_hostname="localhost", timeout=60) as smtp:
        smtp.starttls(context=context)
        smtp.login(direct.username, direct.password)
        smtp.sendmail(SENDER, [RECIPIENT], message)


def timed_parallel(submit, message_ids: list[str], parallel: int = 8) -> Timings:
    """`parallel` submitters, each sending its share one message at a time; failures counted."""
    timings, lock = Timings(), threading.Lock()

    def worker(share: list[str]) -> None:
        for message_id in share:
            message = build_message(message_id)
            started = time.perf_counter()
            try:
                submit(message)
            except (OSError, smtplib.SMTPException, subprocess.SubprocessError) as exc:
                with lock:
                    timings.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                continue
            with lock:
                timings.seconds.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(message_ids[n::parallel],)) for n in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return timings


def tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
