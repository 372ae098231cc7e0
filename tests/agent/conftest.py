"""Shared fixtures for the agent tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailagent.agent.settings import AgentSettings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture()
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture()
def queue_tree(tmp_path) -> Path:
    """A copy of the fixture queue tree (hashed folders, short and long IDs)."""
    return Path(shutil.copytree(FIXTURES / "queue", tmp_path / "spool"))


@pytest.fixture()
def settings(tmp_path, queue_tree) -> AgentSettings:
    return AgentSettings(host="web1.example.org", state_dir=tmp_path / "state",
                         spool_dir=tmp_path / "state" / "spool", postfix_spool=queue_tree,
                         log_source=str(tmp_path / "mail.log"),
                         relay_settings_path=tmp_path / "relay.json")
