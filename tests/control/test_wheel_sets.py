"""Real wheel sets, resolved with pip for hosts of every supported kind, checked wheel by wheel
and resolved again from the set alone (as a host does, with no index)."""

from __future__ import annotations

import ast
import time
import zipfile

import pytest

from mailagent.control.targets import WheelTarget
from mailagent.control.wheels import AGENT_LEAVES_OUT, agent_spec, build_set
from tests.control.helpers import dry_run, wheel_fits

HOSTS = {  # the interpreter and glibc each kind of host ships
    "debian12-aarch64": WheelTarget("3.11.2", "aarch64", (2, 36)),
    "debian13-aarch64": WheelTarget("3.13.5", "aarch64", (2, 41)),
    "ubuntu2204-x86_64": WheelTarget("3.10.12", "x86_64", (2, 35)),
    "ubuntu2404-x86_64": WheelTarget("3.12.3", "x86_64", (2, 39)),
    "debian13-x86_64": WheelTarget("3.13.5", "x86_64", (2, 41)),
}
COMPILED = {"pydantic_core", "cryptography", "markupsafe"}


@pytest.fixture(scope="module")
def agent_sets(request):
    """Each host's agent set (in the user's wheel cache: a second run needs no pip)."""
    say = request.config.pluginmanager.get_plugin("terminalreporter").write_line
    sets = {}
    for name, target in HOSTS.items():
        started = time.monotonic()
        sets[name] = build_set(agent_spec(), target)
        say(f"agent wheel set for {name}: {time.monotonic() - started:.1f} s ({sets[name].folder})")
    return sets


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", HOSTS)
def test_every_wheel_fits_the_host(agent_sets, name):
    target, wheels = HOSTS[name], agent_sets[name]
    misfits = [p.name for p in wheels.files if not wheel_fits(p.name, target)]
    assert misfits == [], f"{target.describe()}: {misfits}"
    names = {p.name.split("-")[0].lower() for p in wheels.files}
    assert COMPILED | {"mailagent", "pydantic", "httpx", "jinja2"} <= names
    tagged = [p.name for p in wheels.files if p.name.split("-")[0].lower() in COMPILED]
    assert all(target.machine in n for n in tagged), tagged


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", HOSTS)
def test_the_set_alone_resolves_for_the_host(agent_sets, name, tmp_path):
    target, wheels = HOSTS[name], agent_sets[name]
    report = dry_run(wheels.folder, target, tmp_path)
    installed = {item["metadata"]["name"].lower().replace("-", "_"): item for item in report["install"]}
    assert all(item["download_info"]["url"].startswith(f"file://{wheels.folder}/")
               for item in installed.values())
    in_set = {p.name.split("-")[0].lower() for p in wheels.files}
    # pip judges environment markers by its own interpreter (3.11 here), so for a 3.10 host it
    # leaves out what only 3.10 needs (tomli, exceptiongroup): those are the only extras allowed.
    assert set(installed) <= in_set
    assert in_set - set(installed) <= ({"tomli", "exceptiongroup"} if target.minor < (3, 11) else set())


def test_agent_wheel_holds_only_what_runs_on_hosts(agent_sets):
    with zipfile.ZipFile(agent_sets["debian13-x86_64"].project_wheel) as wheel:
        names = wheel.namelist()
        sources = {n: wheel.read(n) for n in names if n.endswith(".py")}
    subpackages = {n.split("/")[1] for n in names if n.startswith("mailagent/") and n.count("/") > 1}
    assert {"agent", "relay"} <= subpackages and not subpackages & set(AGENT_LEAVES_OUT)
    # What the host installs besides the wheel: pyproject's core and agent extra, in the set.
    assert (agent_sets["debian13-x86_64"].folder / "requirements.txt").read_text() == agent_spec().requirements
    assert "mailagent/relay/providers.json" in names
    assert not any(n.endswith(".pyc") or "__pycache__" in n for n in names)
    # No module left in imports a left-out one, even lazily inside a function.
    left_out = {f"mailagent.{part}" for part in AGENT_LEAVES_OUT}
    for name, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            assert not [m for m in modules if ".".join(m.split(".")[:2]) in left_out], name


def test_same_source_same_set_and_bytes(agent_sets, tmp_path):
    again = build_set(agent_spec(), HOSTS["debian13-x86_64"])
    assert again.folder == agent_sets["debian13-x86_64"].folder
    fresh = build_set(agent_spec(tmp_path / "cache"), HOSTS["debian13-x86_64"])  # pip again
    assert fresh.folder.name == again.folder.name  # same content, same hash
    assert fresh.manifest == again.manifest


@pytest.mark.timeout(900)
def test_collector_set_holds_the_collector_and_resolves_alone(tmp_path):
    from roles.collector.wheels import collector_spec
    target = WheelTarget("3.11.2", "x86_64", (2, 36))
    wheels = build_set(collector_spec(), target)
    with zipfile.ZipFile(wheels.project_wheel) as wheel:
        names = wheel.namelist()
    assert "mailagent/collector/app.py" in names and "mailagent/agent/cli.py" in names
    assert not any(n.startswith(("mailagent/lab/", "mailagent/control/", "mailagent/vagrantlab/"))
                   for n in names)
    assert [p.name for p in wheels.files if not wheel_fits(p.name, target)] == []
    report = dry_run(wheels.folder, target, tmp_path)
    assert {"fastapi", "uvicorn", "sqlalchemy", "psycopg", "pynacl"} <= {
        item["metadata"]["name"].lower() for item in report["install"]}
