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


def test_drain_as_a_table_or_in_the_older_flat_keys(tmp_path):
    from mailagent.relay.deployed import DrainTarget
    target = DrainTarget(relay="[hub.example.net]:1465", tls="implicit", ca_file="/etc/postfix/drain-ca.pem")
    table, flat = tmp_path / "table.toml", tmp_path / "flat.toml"
    table.write_text('host = "h"\n[drain]\nrelay = "[hub.example.net]:1465"\ntls = "implicit"\n'
                     'ca_file = "/etc/postfix/drain-ca.pem"\n')
    flat.write_text('host = "h"\ndrain_relay = "[hub.example.net]:1465"\ndrain_tls = "implicit"\n'
                    'drain_ca_file = "/etc/postfix/drain-ca.pem"\n')
    assert load_settings(table, {}).drain == load_settings(flat, {}).drain == target
    assert load_settings(tmp_path / "none.toml", {}).drain == DrainTarget()
    written = tmp_path / "written.toml"
    written.write_text(to_toml(load_settings(flat, {})))
    assert "[drain]" in written.read_text() and load_settings(written, {}).drain == target


def test_drain_from_the_environment_in_either_form(tmp_path):
    env = {"MAILAGENT_HOST": "h", "MAILAGENT_DRAIN_RELAY": "[hub]:1587", "MAILAGENT_DRAIN__TLS": "implicit"}
    assert load_settings(tmp_path / "none.toml", env).drain.model_dump() == {
        "relay": "[hub]:1587", "tls": "implicit", "ca_file": None}
    path = tmp_path / "agent.toml"
    path.write_text('host = "h"\ndrain_relay = "[old]:1587"\n')
    assert load_settings(path, {"MAILAGENT_DRAIN__RELAY": "[new]:1587"}).drain.relay == "[new]:1587"
    path.write_text('host = "h"\n[drain]\nrelay = "[old]:1587"\n')
    assert load_settings(path, {"mailagent_drain_relay": "[new]:1587"}).drain.relay == "[new]:1587"
    with pytest.raises(SettingsError, match="drain.relay: Value error"):
        load_settings(path, {"MAILAGENT_DRAIN__RELAY": "hub:1587"})
