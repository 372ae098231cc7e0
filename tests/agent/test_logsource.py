"""Log read position on disk: restart, rotation, truncation, partial lines."""

from __future__ import annotations

import os
import shutil

import pytest

from mailagent.agent.checks.log_stats import Check
from mailagent.agent.logsource import FileSource

SENT = "Nov 21 11:00:0{n} w postfix/smtp[5]: A1B2C{n}: to=<a@b>, relay=s[1.2.3.4]:25, status=sent (ok)\n"


def append(path, *ns):
    with open(path, "a") as fh:
        fh.writelines(SENT.format(n=n) for n in ns)


@pytest.fixture()
def log(tmp_path):
    path = tmp_path / "mail.log"
    append(path, 0)  # history before the agent started
    return path


def cycle(source) -> int:
    records, position = source.read()
    source.commit(position)
    return len(records)


def test_first_run_starts_at_the_end_then_counts_new_lines(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json")
    assert cycle(source) == 0
    append(log, 1, 2)
    assert cycle(source) == 2
    assert cycle(source) == 0


def test_restart_neither_loses_nor_double_counts(log, tmp_path):
    cycle(FileSource(log, tmp_path / "pos.json"))
    append(log, 1)
    assert cycle(FileSource(log, tmp_path / "pos.json")) == 1
    append(log, 2, 3)
    source = FileSource(log, tmp_path / "pos.json")
    source.read()  # read but never committed: as if killed before the report was spooled
    assert cycle(FileSource(log, tmp_path / "pos.json")) == 2


def test_rotation_finishes_old_file_then_reads_new(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json")
    cycle(source)
    append(log, 1)                       # written before rotation, not yet read
    os.rename(log, f"{log}.1")           # logrotate
    append(log, 2, 3)                    # the new file
    assert cycle(source) == 3
    append(log, 4)
    assert cycle(source) == 1


def test_rotation_without_old_file_reads_new_from_start(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json")
    cycle(source)
    os.unlink(log)
    append(log, 1, 2)
    assert cycle(source) == 2


def test_copytruncate_restarts_at_zero(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json")
    append(log, 1, 2, 3)
    cycle(source)
    shutil.copy(log, f"{log}.1")
    open(log, "w").close()
    append(log, 4)
    assert cycle(source) == 1


def test_partial_line_waits_for_its_end(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json")
    cycle(source)
    line = SENT.format(n=1)
    with open(log, "a") as fh:
        fh.write(line[:20])
    assert cycle(source) == 0
    with open(log, "a") as fh:
        fh.write(line[20:])
    assert cycle(source) == 1


def test_line_bound_per_cycle_keeps_the_rest(log, tmp_path):
    source = FileSource(log, tmp_path / "pos.json", max_lines=2)
    cycle(source)
    append(log, 1, 2, 3)
    assert cycle(source) == 2
    assert cycle(source) == 1


def test_log_stats_commits_only_when_told(settings, tmp_path):
    log = tmp_path / "mail.log"
    append(log, 0)
    check = Check(settings)
    check.run(0)
    check.commit()
    append(log, 1, 2)
    assert check.run(0).sent == 2
    assert Check(settings).run(0).sent == 2  # not committed: a fresh agent counts them again
    check.commit()
    assert Check(settings).run(0).sent == 0


def test_missing_log_file_fails_the_check(settings):
    with pytest.raises(FileNotFoundError):
        Check(settings).run(0)
