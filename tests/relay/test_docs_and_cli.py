"""The README's settings table matches the model; the relay commands behave as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailagent.relay.docs import update

ROOT = Path(__file__).resolve().parents[2]


def mailagent(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailagent", *args], capture_output=True, text=True)


def test_readme_settings_table_matches_the_model():
    readme = (ROOT / "README.md").read_text()
    assert update(readme) == readme, "run: python -m mailagent.relay.docs README.md"


def test_render_bad_profile_exits_2_with_one_line_per_problem(tmp_path):
    profile = tmp_path / "relay.json"
    profile.write_text(json.dumps({"provider": "ses", "port": 2525, "username": "u:x", "password": "p"}))
    result = mailagent("render", "--profile", str(profile), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "relay.region: ses needs a region, e.g. us-east-1",
        "relay.port: 2525 is not a port ses offers (STARTTLS: 25, 587, 2587; implicit TLS: 465, 2465)",
        "relay.username: must not contain ':' (Postfix splits user and password at the first ':')",
    ]
    assert not (tmp_path / "out").exists()


def test_render_writes_the_files_with_a_private_map(tmp_path):
    profile = tmp_path / "relay.json"
    profile.write_text(json.dumps({"provider": "sendgrid", "port": 2525, "password": "SG.k"}))
    result = mailagent("render", "--profile", str(profile), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} >= {"main.cf", "sasl_passwd", "relay.json", "master.cf.entries"}
    assert (out / "sasl_passwd").stat().st_mode & 0o777 == 0o600
    assert (out / "sasl_passwd").read_text() == "[smtp.sendgrid.net]:2525 apikey:SG.k\n"
    assert "SG.k" not in (out / "main.cf").read_text() + (out / "relay.json").read_text()


def test_providers_json_lists_every_preset_with_ports_and_modes():
    result = mailagent("providers", "--json")
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"sendgrid", "mailgun", "ses", "mandrill", "sparkpost", "gmail",
                         "google_relay", "office365", "office365_connector", "outlook", "hub",
                         "custom"}
    assert rows["office365_connector"]["credentials"] == "none"
    assert "office365_connector" in rows["office365"]["warning"]
    assert rows["ses"]["implicit_ports"] == [465, 2465]
    assert rows["ses"]["tls_modes"]["2587"] == "starttls"
    assert rows["sendgrid"]["username"] == "apikey"
    table = mailagent("providers").stdout
    assert "smtp.sendgrid.net" in table and "2525" in table
    assert "<yours>.mail.protection.outlook.com" in table and "warning: Microsoft turns off" in table


@pytest.mark.parametrize("version, level, protocols", [
    ("3.5", "2", "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1"), ("3.7.11", "3.6", ">=TLSv1.2")])
def test_render_for_a_postfix_version(tmp_path, version, level, protocols):
    profile = tmp_path / "relay.json"
    profile.write_text(json.dumps({"provider": "sendgrid", "port": 2525, "password": "SG.k"}))
    result = mailagent("render", "--profile", str(profile), "--out", str(tmp_path / "out"),
                       "--postfix", version)
    assert result.returncode == 0, result.stderr
    main_cf = (tmp_path / "out" / "main.cf").read_text()
    assert f"compatibility_level = {level}\n" in main_cf
    assert f"smtp_tls_mandatory_protocols = {protocols}\n" in main_cf


@pytest.mark.parametrize("version, line", [
    ("three", "--postfix: 'three' is not a Postfix version like 3.7"),
    ("3.4", "--postfix: 3.4 is older than Postfix 3.5, the oldest supported")])
def test_render_bad_postfix_version_exits_2_with_one_line(tmp_path, version, line):
    profile = tmp_path / "relay.json"
    profile.write_text(json.dumps({"provider": "sendgrid", "port": 2525, "password": "SG.k"}))
    result = mailagent("render", "--profile", str(profile), "--out", str(tmp_path / "out"),
                       "--postfix", version)
    assert (result.returncode, result.stderr.splitlines()) == (2, [line])


def test_every_hint_in_code_is_in_the_readme_and_the_other_way_round():
    from mailagent.agent.reasons import HINTS as REASON_HINTS
    from mailagent.relay import check
    from mailagent.relay.docs import HINTS_END, HINTS_START
    from mailagent.relay.presets import providers

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split(HINTS_START, 1)[1].split(HINTS_END, 1)[0]
    in_code = [h for _, h in check.HINTS] + [h for p in providers().values() for h in p.hints.values()]
    in_code += [h for _, _, h in check.SITUATIONS] + list(REASON_HINTS.values())
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| reply")]
    assert len(rows) == len(in_code)
    for hint in in_code:
        assert " ".join(hint.split()).replace("|", "\\|") in table


def test_no_hint_names_a_project_file_that_does_not_exist():
    import re

    from mailagent.relay.docs import hints_table

    project = Path(__file__).resolve().parents[2]
    named = re.findall(r"\b((?:deploy|roles|inventories|bench)/[\w./-]+\.py)\b", hints_table())
    assert named, "the hub hint names deploy/site.py"
    assert [path for path in named if not (project / path).exists()] == []
