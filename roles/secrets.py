"""The one way a role puts a secret on a host: `private_file`.

Passwords, tokens and private keys reach a host only through here. The content goes on stdin
into a file created with the final owner and a 0600/0640 mode from the start, then renamed into
place: no moment where it is readable by others, nothing of it in a command line, in pyinfra's
output or in `--diff` (which shows only that the file changed, never its lines).
"""

from __future__ import annotations

import hashlib
import posixpath

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import File, Sha256File

_WRITE_PRIVATE = (
    'umask 077; d=$(dirname "$1"); t=$(mktemp "$d/.mailagent.XXXXXX") || exit 1; '
    'cat > "$t" && chown "$2" "$t" && chmod "$3" "$t" && mv -f "$t" "$1" || { rm -f "$t"; exit 1; }'
)
PRIVATE_MODES = ("600", "640", "400", "440")


@operation()
def private_file(path: str, content: str, user: str = "root", group: str = "root", mode: str = "600"):
    """Ensure a secret file holds `content`, owned `user:group` with `mode`; never shows content."""
    if mode not in PRIVATE_MODES:
        raise ValueError(f"{path}: a secret file's mode must be one of {PRIVATE_MODES}, not {mode}")
    digest = hashlib.sha256(content.encode()).hexdigest()
    current = host.get_fact(File, path=path)
    same_content = current and host.get_fact(Sha256File, path=path) == digest
    same_meta = current and (current["user"], current["group"]) == (user, group) and \
        int(str(current["mode"]), 8) == int(mode, 8)
    if same_content and same_meta:
        host.noop(f"{path} is up to date")
        return
    yield StringCommand("mkdir", "-p", QuoteString(posixpath.dirname(path)))
    yield StringCommand("sh", "-c", QuoteString(_WRITE_PRIVATE), "-", QuoteString(path),
                        QuoteString(f"{user}:{group}"), QuoteString(mode), _stdin=content)
