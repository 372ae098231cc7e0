"""Small JSON state files written atomically (tmp in the same folder, fsync, os.replace)."""

from __future__ import annotations

import json
from pathlib import Path

from mailagent.fileio import fsync_dir, write_atomic  # noqa: F401 (part of this module's API)


def read_json(path: Path, default=None):
    """The JSON in `path`, or `default` when it is missing or unreadable as JSON."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def write_json(path: Path, value, mode: int = 0o640) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True, default=str).encode(), mode)
