"""The README's quick start, followed literally in a fresh virtualenv against pyinfra @fake hosts.

A copy of the project (its git files) gets the README's own install line, run as written; then
each documented inventory (relays only, with a collector, with a hub) is written where the README
says, with the README's commands run as written: the environment it exports (dummy values), the
`mailagent` commands it runs first, `--dry`, then the deploy itself. The only change made to an
inventory is appended after it: its hosts become @fake hosts answering like Debian 13. A README
edit that breaks the quick start, or code that stops matching the README, fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.roles.conftest import platform_lines

pytestmark = pytest.mark.timeout(1200)
PROJECT = Path(__file__).resolve().parents[1]
README = PROJECT / "README.md"
INVENTORY = "inventories/production.py"
CHECK_OK = '{"ok": true, "step": "quit", "elapsed_seconds": 0.1}'
FAKE = {"fake_delay": 0, "fake_delay_jitter": 0, "fake_responses": {
    "GNU_LIBC_VERSION": platform_lines("debian13"), "uname -s": "Linux", "if_inet6": "yes",
    "command -v useradd": "/usr/sbin/useradd", "check_relay": CHECK_OK},
    # The README's domains (example.com) are not the tests' to query: the DNS pre-flight stays off
    # (tests/control/dnscheck and tests/roles/test_dns_readiness.py run it against a loopback nsd).
    "dns_check": "off"}
# Appended to each inventory: the same hosts, as @fake hosts (their own name is what `uname -n` says).
HARNESS = '''

# --- tests/test_readme.py: the hosts above, as pyinfra @fake hosts ---
import json as _json
_FAKE = _json.loads({fake!r})
for _group in ("relays", "hub", "collector"):
    if _group in globals():
        globals()[_group] = [
            ("@fake/" + _name, {{**_data, **_FAKE, "fake_responses": {{**_FAKE["fake_responses"], "uname -n": _name}}}})
            for _name, _data in globals()[_group]]
'''


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(section heading, language, body) of every fenced block, in order."""
    found, heading = [], ""
    for match in re.finditer(r"^(#{2,3} [^\n]*)$|^```(\w*)\n(.*?)^```", text, re.M | re.S):
        if match.group(1):
            heading = match.group(1).lstrip("#").strip()
        else:
            found.append((heading, match.group(2), match.group(3)))
    return found


def examples(text: str) -> dict[str, dict]:
    """Per documented set-up: its inventory code and the shell lines to run after writing it."""
    result: dict[str, dict] = {}
    for heading, language, body in blocks(text):
        name = {"Quick start for ops: point a fleet at a real provider": "relays",
                "With a collector": "collector", "The central relay hub": "hub"}.get(heading)
        if name is None:
            continue
        example = result.setdefault(name, {"inventory": [], "shell": []})
        if language == "python" and body.startswith(f"# {INVENTORY}"):
            example["inventory"].append(body)
        elif language == "sh":
            example["shell"] += [line for line in body.splitlines() if line.strip()]
    return result


def install_line(text: str) -> str:
    _, _, body = next(b for b in blocks(text) if b[1] == "sh" and "pip install" in b[2])
    return next(line for line in body.splitlines() if "pip install" in line)


def runnable(line: str) -> str:
    """A README shell line as run here: comments dropped, `export X=...` given dummy values."""
    line = re.sub(r"\s+#.*$", "", line).strip()
    if line.startswith("export "):
        names = re.findall(r"(?:^|\s)([A-Z_][A-Z0-9_]*)=", line[len("export"):])
        return "export " + " ".join(f"{name}={name.lower()}-dummy-value-0123456789abcdef" for name in names)
    return line


def run(command: str, cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The project's tracked files in a new folder, with the README's install line run in it."""
    copy = tmp_path_factory.mktemp("readme") / "mailagent"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source, target = PROJECT / name, copy / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    run(install_line(README.read_text()), copy)
    return copy


def test_the_readme_documents_each_set_up():
    found = examples(README.read_text())
    assert sorted(found) == ["collector", "hub", "relays"]
    for name, example in found.items():
        assert example["inventory"], f"{name}: no `# {INVENTORY}` block"
    assert any("deploy/site.py --dry" in line for line in found["relays"]["shell"])


@pytest.mark.parametrize("name", ["relays", "collector", "hub"])
def test_the_quick_start_works_as_written(fresh_copy, name):
    found = examples(README.read_text())
    example = found[name]
    # "with the relays of the quick start": the collector's inventory extends the first one.
    code = found["relays"]["inventory"] if name == "collector" else []
    inventory = fresh_copy / INVENTORY
    inventory.write_text("\n".join(code + example["inventory"]) + HARNESS.format(fake=json.dumps(FAKE)))
    lines = [runnable(line) for line in example["shell"] if "pip install" not in line]
    if name != "relays":  # the quick start's environment first; its deploy commands unless given
        quick = [runnable(line) for line in found["relays"]["shell"] if "pip install" not in line]
        own_deploys = any(line.startswith(".venv/bin/pyinfra") for line in lines)
        lines = [line for line in quick if line.startswith("export ")] + lines + (
            [] if own_deploys else [line for line in quick if line.startswith(".venv/bin/pyinfra")])
    deploys = [line for line in lines if line.startswith(".venv/bin/pyinfra")]
    assert any("--dry" in line for line in deploys) and any(" -y" in line for line in deploys)
    output = run("\n".join(lines), fresh_copy)
    assert "dummy-value" not in output  # no secret from the environment in pyinfra's output
    assert "Upload /etc/postfix/main.cf" in output and "Install the agent into /opt/mailagent/venv" in output


def test_the_example_inventory_deploys(fresh_copy):
    """inventories/example.py, as its docstring says to use it."""
    source = (PROJECT / "inventories/example.py").read_text()
    (fresh_copy / INVENTORY).write_text(source + HARNESS.format(fake=json.dumps(FAKE)))
    usage = source.split('"""', 2)[1]
    lines = [runnable(line) for line in usage.splitlines() if line.strip().startswith((".venv/", "export "))]
    output = run("\n".join(lines), fresh_copy)
    assert "dummy-value" not in output
    for wanted in ("Install the collector into /opt/mailagent-collector/venv", "Upload /etc/postfix/main.cf",
                   "Install the agent into /opt/mailagent/venv"):
        assert wanted in output
