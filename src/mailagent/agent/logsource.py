"""Where log lines come from, with the read position kept on disk.

`read()` returns records and a new position without saving it; `commit(position)` saves it once
the figures are safely in a spooled report, so a restart neither loses nor double-counts lines.

    FileSource     a mail.log file: {"inode", "offset", "head"}; rotation (new inode, or the same
                   inode reused with other first bytes) finishes the old file (found as <path>.1)
                   then reads the new one from 0; truncation restarts at 0
    JournalSource  journalctl -o json SYSLOG_FACILITY=2: {"cursor"} (or {"since"} before the
                   first mail entry)

The first run starts at the end: history before the agent was installed is not counted.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mailagent.agent.maillog import LogRecord, parse_journal_entry, parse_syslog_line
from mailagent.agent.runner import stream_lines

HEAD_BYTES = 64
from mailagent.agent.statefile import read_json, write_json


class FileSource:
    def __init__(self, path: Path, state_path: Path, max_lines: int = 200_000):
        self.path, self.state_path, self.max_lines = Path(path), Path(state_path), max_lines

    def read(self) -> tuple[list[LogRecord], dict]:
        state = read_json(self.state_path, {})
        st = os.stat(self.path)
        if "inode" not in state:
            return [], self._position(st.st_ino, st.st_size)
        lines: list[str] = []
        offset = state["offset"]
        if state["inode"] != st.st_ino or not _same_head(self.path, state.get("head", "")):
            rotated = self._rotated(state["inode"])
            if rotated is not None:
                lines, end = _read_lines(rotated, offset, self.max_lines)
                if len(lines) >= self.max_lines:  # finish the old file first, next cycle
                    return _records(lines), {**state, "offset": end}
            offset = 0
        elif st.st_size < offset:
            offset = 0
        more, end = _read_lines(self.path, offset, self.max_lines - len(lines))
        return _records(lines + more), self._position(st.st_ino, end)

    def _position(self, inode: int, offset: int) -> dict:
        # The first bytes tell a new file from the old one when the file system reuses the inode.
        return {"inode": inode, "offset": offset, "head": _head(self.path, min(offset, HEAD_BYTES))}

    def _rotated(self, inode: int) -> Path | None:
        for candidate in (Path(f"{self.path}.1"), Path(f"{self.path}.0")):
            try:
                if os.stat(candidate).st_ino == inode:
                    return candidate
            except FileNotFoundError:
                continue
        return None

    def commit(self, position: dict) -> None:
        write_json(self.state_path, position)


def _same_head(path: Path, head: str) -> bool:
    return _head(path, len(head) // 2) == head


def _head(path: Path, size: int) -> str:
    with open(path, "rb") as fh:
        return fh.read(size).hex()


def _read_lines(path: Path, offset: int, limit: int) -> tuple[list[str], int]:
    """Whole lines from `offset`, at most `limit`; a line still being written is left for later."""
    lines = []
    with open(path, "rb") as fh:
        fh.seek(offset)
        while len(lines) < limit:
            line = fh.readline()
            if not line.endswith(b"\n"):
                break
            lines.append(line.decode(errors="replace"))
            offset += len(line)
    return lines, offset


def _records(lines: list[str]) -> list[LogRecord]:
    return [r for r in map(parse_syslog_line, lines) if r is not None]


class JournalSource:
    def __init__(self, state_path: Path, max_lines: int = 200_000, deadline_seconds: float = 20,
                 command: tuple[str, ...] = ("journalctl",)):
        self.state_path, self.max_lines = Path(state_path), max_lines
        self.deadline, self.command = deadline_seconds, list(command)

    def read(self) -> tuple[list[LogRecord], dict]:
        state = read_json(self.state_path, {})
        if not state:
            return [], {"since": int(time.time())}
        argv = self.command + ["-o", "json", "--no-pager", "SYSLOG_FACILITY=2"]
        argv += [f"--after-cursor={state['cursor']}"] if "cursor" in state else [f"--since=@{state['since']}"]
        records, position = [], dict(state)

        def on_line(line: str) -> None:
            if len(records) >= self.max_lines or not line.strip():
                return
            entry = json.loads(line)
            position.clear()
            position["cursor"] = entry["__CURSOR"]
            if (record := parse_journal_entry(entry)) is not None:
                records.append(record)

        # A read cut short by the deadline still returns what it got, with the cursor of the
        # last entry it handled; the rest comes next cycle.
        stream_lines(argv, on_line, self.deadline)
        return records, position

    def commit(self, position: dict) -> None:
        write_json(self.state_path, position)
