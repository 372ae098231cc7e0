"""Which environment variables the agent reads: its settings' names, MAILAGENT_SETTINGS, nothing else."""

from __future__ import annotations

import pytest

from mailagent.agent.settings import SettingsError, load_settings
from mailagent.cli import main
from tests.agent.test_cli import write_settings

# Documented for other commands (register's token, the lab, the collector's admin): not settings.
OTHERS = {"MAILAGENT_REGISTRATION_TOKEN": "agent-test-registration-token-0123456789",
          "MAILAGENT_LAB_DIR": "/tmp/lab", "MAILAGENT_ADMIN_TOKEN": "agent-test-admin-token-0123456789",
          "MAILAGENT_COLLECTOR_REGISTRATION_TOKEN": "x" * 30}


@pytest.fixture()
def other_variables(monkeypatch):
    for name, value in OTHERS.items():
        monkeypatch.setenv(name, value)


def test_other_mailagent_variables_are_not_settings(tmp_path):
    settings = load_settings(tmp_path / "absent.toml", {**OTHERS, "MAILAGENT_HOST": "h1",
                                                        "MAILAGENT_CHECKS__RELAY_REACH": "false"})
    assert settings.host == "h1" and "relay_reach" not in settings.enabled_checks()


def test_status_and_run_once_load_with_other_variables_set(tmp_path, settings, other_variables,
                                                            monkeypatch, capsys):
    (tmp_path / "mail.log").write_text("")
    path = write_settings(tmp_path, settings)
    assert main(["run", "--once", "--settings", path]) == 0
    assert main(["status", "--settings", path]) == 0
    monkeypatch.setenv("MAILAGENT_SETTINGS", path)  # the file named by the environment
    assert main(["status"]) == 0
    captured = capsys.readouterr()
    assert "deferred 5" in captured.out and captured.err == ""


def test_a_bad_setting_from_the_environment_still_exits_2_naming_it(tmp_path, settings,
                                                                    other_variables, monkeypatch,
                                                                    capsys):
    path = write_settings(tmp_path, settings)
    monkeypatch.setenv("MAILAGENT_INTERVAL_SECONDS", "0")
    assert main(["status", "--settings", path]) == 2
    assert main(["run", "--once", "--settings", path]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("interval_seconds:") for line in lines)


def test_a_misspelt_check_in_the_environment_is_named(tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "absent.toml", {"MAILAGENT_CHECKS__RELAY_RAECH": "false"})
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith("checks:")
