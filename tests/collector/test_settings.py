"""Settings: TOML, environment overrides, explicit overrides, one line per problem."""

from __future__ import annotations

import pytest

from mailagent.collector.settings import SettingsError, load_settings


def test_toml_then_env_then_flags(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text('listen = "0.0.0.0:9000"\nregistration_token = "s3cret-token-0123456789abcd"\n'
                    '[alerts]\ndeferred_threshold = 5\n[notify]\nwebhook_url = "http://127.0.0.1:9/x"\n')
    env = {"MAILAGENT_COLLECTOR_ALERTS__DEFERRED_THRESHOLD": "50",
           "MAILAGENT_COLLECTOR_ALERTS__DISABLED": '["bounce_rate"]', "UNRELATED": "1"}
    settings = load_settings(path, environ=env, database_url="sqlite:////tmp/x.db")
    assert settings.listen_address() == ("0.0.0.0", 9000)
    assert settings.alerts.deferred_threshold == 50
    assert settings.alerts.disabled == ["bounce_rate"]
    assert settings.database_url == "sqlite:////tmp/x.db"
    assert settings.notify.webhook_url == "http://127.0.0.1:9/x"
    # The token is a secret: never shown when the settings are printed.
    assert "s3cret-token-0123456789abcd" not in settings.model_dump_json() and "s3cret-token-0123456789abcd" not in repr(settings)
    assert settings.registration_token.get_secret_value() == "s3cret-token-0123456789abcd"


def test_problems_name_their_fields(tmp_path):
    path = tmp_path / "collector.toml"
    path.write_text('listen = "nowhere"\ntypo = 1\n[alerts]\nbounce_rate = 7\n'
                    'tls_cert = "/etc/c.pem"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    text = "\n".join(err.value.problems)
    assert "listen:" in text and "typo:" in text and "alerts.bounce_rate:" in text
    assert "alerts.tls_cert:" in text


def test_tls_needs_both_halves():
    with pytest.raises(SettingsError) as err:
        load_settings(environ={"MAILAGENT_COLLECTOR_TLS_CERT": "/etc/c.pem"})
    assert "tls_cert and tls_key" in str(err.value)


def test_unreadable_file_is_a_settings_problem(tmp_path):
    with pytest.raises(SettingsError) as err:
        load_settings(tmp_path / "missing.toml", environ={})
    assert err.value.problems[0].startswith("config:")


def test_settings_table_in_the_role_readme_matches_the_model():
    from pathlib import Path

    from mailagent.control import settings_docs
    readme = Path(__file__).resolve().parents[2] / "roles" / "collector" / "README.md"
    text = readme.read_text()
    assert settings_docs.update(text, "roles/collector/README.md") == text, \
        "run: python -m mailagent.control.settings_docs"
    for name in ("listen", "alerts.deferred_threshold", "notify.webhook_url", "retention.raw_days"):
        assert f"| `{name}` |" in text
