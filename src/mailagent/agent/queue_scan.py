"""Count Postfix queue files by reading directories only: no command, no file opened, no stat.

Postfix names queue files by queue ID: short IDs are upper-case hex (`4B1C12A0F3`); long IDs
(`enable_long_queue_ids = yes`) are base-52 time, `z`, base-51 inode (`4Vj3Kp1mZ9zG6D`). Queues
named in `hash_queue_names` (deferred and defer by default) sit in one-character sub-folders,
`hash_queue_depth` levels deep. Temporary names (with a `.`) and anything else are not messages.
A file being written in incoming/maildrop is counted, as `find -type f` would.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mailagent.queues import QUEUE_NAMES

if TYPE_CHECKING:
    from mailagent.report import QueueCounts

SHORT_ID = re.compile(r"[0-9A-F]{6,}")
# Time part: base 52 (digits and consonants, `z` included), 10+ characters; then the `z`
# separator; then the inode in base 51 (no `z`), so the last `z` is always the separator.
LONG_ID = re.compile(r"[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}z[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-y]+")
HASH_DIR = re.compile(r"[0-9A-Za-z]")


_ID_LINES = re.compile(rf"^(?:{SHORT_ID.pattern}|{LONG_ID.pattern})$", re.M)


def is_queue_id(name: str) -> bool:
    """True for a short or long Postfix queue ID."""
    return bool(SHORT_ID.fullmatch(name) or LONG_ID.fullmatch(name))


def count_dir(path: str) -> int:
    """Queue files under one queue folder, descending into one-character hash folders.

    Names only (os.listdir): a queue ID is at least 6 characters, so a one-character entry
    is a hash folder; the IDs are matched in one regex pass over all names (C speed, which
    keeps a 100,000-message queue close to `find | wc -l`).
    """
    names = os.listdir(path)
    total = len(_ID_LINES.findall("\n".join(names)))
    for name in names:
        if len(name) == 1 and HASH_DIR.fullmatch(name):
            sub = os.path.join(path, name)
            if os.path.isdir(sub) and not os.path.islink(sub):
                total += count_dir(sub)
    return total


def count_queues(spool: Path) -> QueueCounts:
    """Messages per queue as the report's QueueCounts (count_folders says what raises)."""
    # Imported here, not at the top: the queue counter helper imports this module and uses
    # count_folders only; pydantic would slow its start (started at the agent's first connection).
    from mailagent.report import QueueCounts

    return QueueCounts(**count_folders(spool))


def count_folders(spool: Path) -> dict[str, int]:
    """Messages per queue; a queue folder that does not exist counts as empty.

    Raises PermissionError when the folders cannot be read (neither root, postfix nor
    CAP_DAC_READ_SEARCH: the agent itself, which asks agent/queue_counter.py instead): that is
    a failed check, not an empty queue.
    """
    counts = {}
    for queue in QUEUE_NAMES:
        try:
            counts[queue] = count_dir(os.path.join(spool, queue))
        except FileNotFoundError:
            counts[queue] = 0
    return counts
