"""Facts the relay role reads from a host (read-only; they never count as changes)."""

from __future__ import annotations

import json

from pyinfra.api import FactBase, QuoteString, StringCommand


class PostconfValues(FactBase):
    """The live values of some main.cf parameters, or {} when Postfix is not installed.

    {"inet_interfaces": "loopback-only", "inet_protocols": "ipv4"}
    """

    def command(self, parameters: list[str]):
        return StringCommand("postconf", *(QuoteString(p) for p in parameters), "2>/dev/null || true")

    @staticmethod
    def default() -> dict:
        return {}

    def process(self, output) -> dict:
        pairs = (line.partition(" = ") for line in output if " = " in line)
        return {key.strip(): value.strip() for key, _, value in pairs}


class HasIPv6(FactBase):
    """Whether the kernel has IPv6 (Postfix's loopback-only listener needs ::1 then). True"""

    def command(self) -> str:
        return "test -e /proc/net/if_inet6 && echo yes || echo no"

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output) -> bool:
        return bool(output) and output[-1].strip() == "yes"


class MapIndexFresh(FactBase):
    """Whether a Postfix map's index (.db or .lmdb, per default_database_type) is newer. True"""

    def command(self, path: str):
        script = (
            'f="$1"; t=$(postconf -h default_database_type 2>/dev/null || echo hash); '
            'case "$t" in hash|btree) i="$f.db";; *) i="$f.$t";; esac; '
            '[ -e "$i" ] && ! [ "$f" -nt "$i" ] && echo fresh || echo stale'
        )
        return StringCommand("sh", "-c", QuoteString(script), "-", QuoteString(path))

    @staticmethod
    def default() -> bool:
        return False

    def process(self, output) -> bool:
        return bool(output) and output[-1].strip() == "fresh"


class RelayCheckResult(FactBase):
    """The relay check run on the host (connect, EHLO, TLS, AUTH, QUIT), as JSON.

    {"ok": false, "step": "auth", "code": 535, "message": "...", "hint": "wrong credentials ..."}
    """

    def command(self, script: str, arguments: list[str]):
        quoted = [QuoteString(arg) for arg in arguments]
        return StringCommand("python3", QuoteString(script), *quoted, "--json", "||", "true")

    def process(self, output) -> dict:
        try:
            return json.loads("\n".join(output))
        except json.JSONDecodeError:
            return {"ok": False, "step": "run", "code": None, "message": "\n".join(output),
                    "hint": "the check script did not run (is python3 installed?)"}
