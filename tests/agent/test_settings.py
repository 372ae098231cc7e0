"""Agent settings: TOML + MAILAGENT_ overrides, one line per problem, TOML round trip."""

from __future__ import annotations

import pytest

from mailagent.agent.settings import AgentSettings, SettingsError, load_settings, to_toml


def test_toml_and_env_overrides(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text('host = "web1"\ninterval_seconds = 30\n[checks]\nrelay_reach = false\n')
    settings = load_settings(path, {"MAILAGENT_INTERVAL_SECONDS": "15",
                                    "MAILAGENT_CHECKS__LOG_STATS": "false",
                                    "MAILAGENT_LOG_SOURCE": "/var/log/mail.log"})
    assert settings.interval_seconds == 15
    assert settings.log_source == "/var/log/mail.log"
    assert settings.enabled_checks() == ["queue_counts", "queue_detail", "postfix_health"]


def test_missing_file_gives_defaults(tmp_path):
    settings = load_settings(tmp_path / "absent.toml", {"MAILAGENT_HOST": "h1"})
    assert settings.host == "h1" and settings.interval_seconds == 60
    assert "relay_reach" in settings.enabled_checks()


@pytest.mark.parametrize("toml,field", [
    ('bogus = 1', "bogus"),
    ('interval_seconds = 0', "interval_seconds"),
    ('log_source = "mail.log"', "log_source"),
    ('metrics_listen = "0.0.0.0:9391"', "metrics_listen"),
    ('collector_url = "ftp://x"', "collector_url"),
    ('[checks]\nno_such_check = true', "checks"),
    ('host = "bad host"', "host"),
])
def test_bad_settings_name_the_field(tmp_path, toml, field):
    path = tmp_path / "agent.toml"
    path.write_text(toml + "\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path, {})
    assert len(err.value.problems) == 1 and err.value.problems[0].startswith(field)


def test_unparsable_toml(tmp_path):
    path = tmp_path / "agent.toml"
    path.write_text("host = \n")
    with pytest.raises(SettingsError, match="agent.toml"):
        load_settings(path, {})


def test_to_toml_round_trips(tmp_path):
    settings = AgentSettings(host="web1", collector_url="https://collector.example:8443",
                             checks={"relay_reach": False}, metrics_listen="127.0.0.1:9391",
                             log_source="/var/log/mail.log", spool_max_reports=10)
    path = tmp_path / "agent.toml"
    path.write_text(to_toml(settings))
    assert load_settings(path, {}) == settings


def test_every_setting_is_described():
    for name, field in AgentSettings.model_fields.items():
        assert field.description, name
