"""A background collector for a folder (what the lab starts): HTTPS with its own CA.

No VMs: these are not lab-marked."""

from __future__ import annotations

import json
import os
import ssl

import httpx
import pytest

from mailagent.lab import collector_daemon as daemon
from tests.collector.conftest import HostIdentity

pytestmark = pytest.mark.timeout(180)


def test_spawn_serves_https_and_stop_ends_it(tmp_path):
    state = tmp_path / "collector"
    info = daemon.spawn(state)
    try:
        assert info["url"].startswith("https://127.0.0.1:")
        assert oct((state / "collector.toml").stat().st_mode & 0o777) == "0o600"
        assert json.loads((state / "runtime.json").read_text())["pid"] == info["pid"]
        host = HostIdentity("relay1.lab.mailagent.test", tmp_path)
        trust = ssl.create_default_context(cafile=info["ca_cert"])
        with httpx.Client(base_url=info["url"], verify=trust) as client:
            assert host.register(client, token=info["registration_token"]).status_code == 200
            assert host.post(client).status_code == 200
            assert client.get("/api/v1/hosts").json()["hosts"][0]["host"] == host.name
        again = daemon.spawn(state)  # restarting keeps the token and the data
        info = again
        with httpx.Client(base_url=info["url"], verify=trust) as client:
            assert len(client.get("/api/v1/hosts").json()["hosts"]) == 1
    finally:
        assert daemon.stop(state)
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)
    assert not daemon.stop(state)


def test_a_collector_that_cannot_start_says_why(tmp_path):
    with pytest.raises(daemon.CollectorError, match="OperationalError"):
        daemon.spawn(tmp_path / "c", tls=False,
                     database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
