"""Operations the hub role needs beyond pyinfra's and the relay role's own."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

# Rewrites the text between two marker lines (or appends the block), reading it from stdin.
_REPLACE_BLOCK = r'''
import os, sys
path, begin, end = sys.argv[1:4]
block = sys.stdin.read()
with open(path) as fh:
    lines = fh.read().splitlines(keepends=True)
out, inside, placed = [], False, False
for line in lines:
    if line.rstrip("\n") == begin:
        inside = True
        continue
    if inside:
        if line.rstrip("\n") == end:
            inside, placed = False, True
            out.append(block)
        continue
    out.append(line)
if not placed:
    if out and not out[-1].endswith("\n"):
        out.append("\n")
    out.append(block)
tmp = path + ".mailagent-tmp"
with open(tmp, "w") as fh:
    fh.write("".join(out))
os.chmod(tmp, os.stat(path).st_mode & 0o7777)
os.replace(tmp, path)
'''


class FileBlock(FactBase):
    """The lines from `begin` to `end` (inclusive) in a file, as one string; "" when absent."""

    def command(self, path: str, begin: str, end: str):
        script = 'test -f "$1" && awk -v b="$2" -v e="$3" \'$0==b{on=1} on{print} $0==e{on=0}\' "$1"'
        return StringCommand("sh", "-c", QuoteString(script), "-", QuoteString(path),
                             QuoteString(begin), QuoteString(end), "|| true")

    @staticmethod
    def default() -> str:
        return ""

    def process(self, output) -> str:
        return "".join(line + "\n" for line in output)


@operation()
def managed_block(path: str, block: str, begin: str, end: str):
    """Ensure `block` (starting with `begin`, ending with `end` lines) is in `path`, in place."""
    if host.get_fact(FileBlock, path=path, begin=begin, end=end) == block:
        host.noop(f"{path}: the managed block is up to date")
        return
    yield StringCommand("python3", "-c", QuoteString(_REPLACE_BLOCK), QuoteString(path),
                        QuoteString(begin), QuoteString(end), _stdin=block)


# Rebuilds the SASL database from the 0600 clients file: read inside the shell, so no password
# is ever an argument (printf is a dash builtin) or part of pyinfra's output.
_REBUILD_SASLDB = (
    'set -e; umask 027; db="$1"; new="$1.new"; rm -f "$new"; '
    'while read -r user pass; do [ -n "$user" ] || continue; '
    'printf "%s" "$pass" | saslpasswd2 -p -c -f "$new" -u "$2" "$user"; done < "$3"; '
    'touch "$new"; chown root:postfix "$new"; chmod 640 "$new"; mv -f "$new" "$db"'
)


def rebuild_sasldb_command(db: str, realm: str, clients_file: str) -> StringCommand:
    return StringCommand("sh", "-c", QuoteString(_REBUILD_SASLDB), "-", QuoteString(db),
                         QuoteString(realm), QuoteString(clients_file))
