"""`mailagent lab down`, then `lab up` again in the same folder, then a site deploy whose agents
register with the new lab's collector (an old collector database would refuse their new keys
with HTTP 409). Also: a lab left half dead is cleaned away by the next `lab up`.

The "up, deploy" before the down is the session lab and its first deploy (`deployed`), so this
costs two one-VM boots and one deploy. Runs last (conftest LAST): it replaces the session lab,
whose teardown then takes the new one down.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailagent.lab import state as lab_state
from mailagent.lab import vm
from tests.lab.conftest import LAB_DEBIAN, lab_processes
from tests.lab.helpers import deploy
from tests.lab.test_e2e_fleet import api, wait_for

pytestmark = [pytest.mark.lab, pytest.mark.timeout(1500)]


def test_down_up_deploy_registers_again(deployed, tmp_path):
    state, _, _ = deployed
    folder = Path(state["lab_dir"])
    old_token = state["collector"]["registration_token"]

    def cli(*args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, MAILAGENT_LAB_DIR=str(folder))
        done = subprocess.run([sys.executable, "-m", "mailagent", "lab", *args], env=env,
                              capture_output=True, text=True, timeout=1200)
        print(done.stdout + done.stderr)
        return done

    assert cli("down").returncode == 0
    assert lab_processes(folder) == []
    assert not (folder / "state.json").exists() and not (folder / "collector").exists()
    up = ("up", "--hosts", "1", "--debian", LAB_DEBIAN)
    assert cli(*up).returncode == 0
    # A lab whose VM died is stale: the next `lab up` cleans it away instead of refusing.
    vm.kill_hard(lab_state.load(folder), "relay1")
    again = cli(*up)
    assert again.returncode == 0 and "stale lab" in again.stdout, again.stdout + again.stderr
    fresh = lab_state.load(folder)
    state.clear()
    state.update(fresh)  # the session fixture's teardown takes this lab down
    assert [h["name"] for h in fresh["hosts"]] == ["relay1"] and vm.healthy(folder)
    assert fresh["collector"]["registration_token"] != old_token
    result = deploy(fresh, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "409" not in result.stdout
    wait_for(lambda: {h["host"]: h for h in api(fresh, "/api/v1/hosts")["hosts"]},
             lambda hosts: hosts.get("relay1", {}).get("last_seen"), "relay1 to report to the new collector")
