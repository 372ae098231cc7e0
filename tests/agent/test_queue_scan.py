"""queue_counts reads the hashed queue folders by name only."""

from __future__ import annotations

import os

import pytest

from mailagent.agent.checks.queue_counts import Check
from mailagent.agent.queue_scan import count_queues, is_queue_id


@pytest.mark.parametrize("name", ["4B1C12A0F3", "ABCDEF", "4jWqGz4YPTzJ9FX", "4jWqHz0000zJ9BB"])
def test_queue_ids_short_and_long(name):
    assert is_queue_id(name)


@pytest.mark.parametrize("name", ["README", "1234567.89", "4b1c12a0f3", "4jWqGz4YPTzJ9Fz",
                                  "abc", ".4B1C12A0F3.tmp", "4aWqGz4YPTzJ9FX"])
def test_not_queue_ids(name):
    assert not is_queue_id(name)


def test_counts_fixture_tree(queue_tree):
    counts = count_queues(queue_tree)
    # deferred: two hash levels, short and long IDs; `sub/` is not a hash folder.
    assert counts.model_dump() == {"maildrop": 1, "incoming": 1, "active": 1, "deferred": 5, "hold": 2}


def test_missing_queue_folder_is_empty(tmp_path):
    (tmp_path / "deferred").mkdir()
    assert sum(count_queues(tmp_path).model_dump().values()) == 0


def test_unreadable_spool_is_an_error_not_zero(queue_tree):
    if os.geteuid() == 0:
        # root reads anything; take the folder away instead of its permissions
        os.rename(queue_tree / "deferred", queue_tree / "gone")
        (queue_tree / "deferred").write_text("not a folder")
        with pytest.raises(NotADirectoryError):
            count_queues(queue_tree)
    else:
        os.chmod(queue_tree / "deferred", 0)
        with pytest.raises(PermissionError):
            count_queues(queue_tree)


def test_check_returns_counts(settings):
    assert Check(settings).run(0).deferred == 5
