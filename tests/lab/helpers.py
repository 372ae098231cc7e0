"""What the end-to-end tests do to a running lab: deploy with pyinfra, send mail, watch the sink."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def lab_inventory(state: dict, folder: Path, overrides: dict[str, dict] | None = None,
                  replace: dict[str, dict] | None = None) -> Path:
    """An inventory file like inventories/lab.py, with some hosts' relay settings changed
    (`overrides`: merged into the lab's; `replace`: instead of the lab's)."""
    env = dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"])
    listing = subprocess.run(
        [sys.executable, "-c", "import json, runpy; g = runpy.run_path('inventories/lab.py');"
         "print(json.dumps({k: v for k, v in g.items() if k in ('relays', 'hub')}))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    groups = json.loads(listing.stdout)
    for hosts in groups.values():
        for name, data in hosts:
            if name in (overrides or {}):
                data["relay"] = {**data["relay"], **overrides[name]}
            if name in (replace or {}):
                data["relay"] = replace[name]
    path = folder / f"inventory_{uuid.uuid4().hex[:8]}.py"
    path.write_text("".join(f"{group} = {[tuple(h) for h in hosts]!r}\n" for group, hosts in groups.items()))
    return path


def deploy(state: dict, folder: Path, overrides=None, args=(), deploy_file="deploy/site.py",
           replace=None):
    """Run pyinfra for real; returns the CompletedProcess (output in .stdout, both streams)."""
    inventory = lab_inventory(state, folder, overrides, replace)
    command = [PYINFRA, "-y", str(inventory), deploy_file, *args]
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, timeout=1200,
                            env=dict(os.environ, MAILAGENT_LAB_DIR=state["lab_dir"]))
    print(result.stdout[-6000:])
    return result


def restart_sink(state: dict) -> None:
    """Start the lab's sink again on the ports, name and address the lab recorded for it."""
    from mailagent.lab import sink

    ports = state["sink"]["ports"]
    sink.spawn(Path(state["lab_dir"]), bind=state["sink"]["bind"], hostname=state["sink"]["hostname"],
               starttls_ports=ports["starttls"], implicit_ports=ports["implicit"])


def changed_operations(output: str) -> dict[str, str]:
    """Rows of pyinfra's results table whose Success (changed) column is not empty."""
    rows = output.partition("--> Results:")[2].splitlines()
    changed = {}
    for row in rows[2:]:
        cells = re.split(r"\s{2,}", row.strip())
        if len(cells) == 5 and not cells[0].startswith("Grand total") and cells[2] != "-":
            changed[cells[0]] = cells[2]
    return changed


def wait_for(fetch, accept, what: str, timeout: float = 240, every: float = 3):
    """`fetch()` again every `every` s until `accept` takes its value; that value, or an
    AssertionError naming `what` and the last value after `timeout` s."""
    deadline = time.monotonic() + timeout
    value = fetch()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value: {value}")
        time.sleep(every)
        value = fetch()
    return value
