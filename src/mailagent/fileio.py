"""Files that must survive a crash: written to a temp file in the same folder, fsynced, renamed.

The temp file is created 0600 (mkstemp) and gets its final mode before the rename, so a secret
is never readable by others, not even briefly. A failed write (a full disk) removes its temp
file and leaves the old file whole; a crash between write and rename leaves a `.NAME.*.tmp`
that `remove_temp_files` clears when the owning service starts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def write_atomic(path: Path, data: bytes, mode: int = 0o640) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_temp_files(folder: Path) -> list[str]:
    """Remove the temp files `write_atomic` left in `folder` when a crash came before the rename;
    return their names. Only for the folder's one writer, at its start (later, one may be in use)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(".") and n.endswith(TEMP_SUFFIX)]
    except FileNotFoundError:
        return []
    for name in names:
        Path(folder, name).unlink(missing_ok=True)
    if names:
        fsync_dir(Path(folder))
    return names
