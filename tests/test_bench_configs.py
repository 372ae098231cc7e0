"""The two configurations bench/relay_throughput.py compares (bench/relay_configs.py), as text."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from relay_configs import Smarthost, baseline, ours, with_settings  # noqa: E402

SMARTHOST = Smarthost("sink.lab.mailagent.test", 40123, "lab-relay", "secret", "-----BEGIN CERTIFICATE-----\n")


def settings(main_cf: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in main_cf.splitlines() if "=" in line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def test_with_settings_replaces_in_place_and_appends_the_rest():
    text = "a = 1\n# b = 2\nc = 3\n"
    assert with_settings(text, {"c": "30", "d": "4"}) == "a = 1\n# b = 2\nc = 30\nd = 4\n"


@pytest.mark.skipif(not shutil.which("postconf"), reason="ours() asks the host's Postfix for its release")
def test_ours_reuses_tls_connections_through_tlsproxy_and_the_baseline_does_not(tmp_path):
    main_cf, files = ours(SMARTHOST)
    mine = settings(main_cf)
    assert mine["smtp_tls_connection_reuse"] == "yes"
    assert mine["relayhost"] == "[sink.lab.mailagent.test]:40123"
    assert files["master.cf.entries"].startswith("tlsproxy")
    assert "lab-relay:secret" in files["sasl_passwd"]

    main_cf, files = baseline(SMARTHOST, tmp_path)
    theirs = settings(main_cf)
    assert "smtp_tls_connection_reuse" not in theirs and "smtp_destination_concurrency_limit" not in theirs
    assert theirs["smtp_tls_session_cache_database"] == "btree:${data_directory}/smtp_scache"
    assert theirs["smtp_sasl_password_maps"] == f"hash:{tmp_path}/sasl_passwd"
    assert "master.cf.entries" not in files
