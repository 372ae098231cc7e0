"""Each supported Python for real: a venv made from the set exactly as the role does on hosts
(pip --no-index from the uploaded folder), then that venv's `mailagent run --once` against a
real collector on loopback, which must store the signed report.

The interpreters come from pyenv (~/.pyenv/versions/3.X.*); a missing one is reported as a
warning and a skip naming the version, and the last test fails when none could be run at all.
"""

from __future__ import annotations

import subprocess
import warnings
from pathlib import Path

import pytest

from mailagent.control.targets import WheelTarget
from mailagent.control.wheels import agent_spec, build_set
from tests.agent.conftest import queue_tree, settings  # noqa: F401  (fixtures)
from tests.agent.test_cli import write_settings
from tests.agent.test_with_collector import wait_for_host
from tests.collector.conftest import TOKEN, make_server  # noqa: F401  (fixture)
from tests.control.helpers import host_env

PYENV = Path.home() / ".pyenv" / "versions"
MINORS = ("3.10", "3.12", "3.13")


def interpreter(minor: str) -> Path | None:
    found = sorted(PYENV.glob(f"{minor}.*/bin/python"),
                   key=lambda p: [int(n) for n in p.parts[-3].split(".") if n.isdigit()])
    return found[-1] if found else None


def host_venv(python: Path, folder: Path) -> tuple[Path, WheelTarget]:
    """What roles/mailagent's venv_installed runs on a host, with this interpreter."""
    full = subprocess.run([str(python), "-c", "import platform; print(platform.python_version())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    local = WheelTarget.local()
    target = WheelTarget(full, local.machine, local.glibc)
    wheels = build_set(agent_spec(), target)
    venv = folder / "venv"
    env = host_env()
    subprocess.run([str(python), "-m", "venv", str(venv)], check=True, env=env)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels.folder)]
    subprocess.run(pip + ["-r", str(wheels.folder / "requirements.txt")], check=True, env=env, timeout=300)
    subprocess.run(pip + ["--no-deps", "--force-reinstall", str(wheels.project_wheel)], check=True,
                   env=env, timeout=120)
    return venv, target


def run(venv: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**host_env(), "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(venv / "bin" / "mailagent"), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60, cwd=venv)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("minor", MINORS)
def test_agent_from_its_set_reports_to_a_real_collector(minor, make_server, tmp_path, settings):  # noqa: F811
    python = interpreter(minor)
    if python is None:
        message = f"Python {minor} NOT exercised: no {PYENV}/{minor}.*/bin/python on this machine"
        warnings.warn(message, pytest.PytestWarning)
        pytest.skip(message)
    venv, target = host_venv(python, tmp_path)
    collector = make_server()
    assert run(venv, "--help").returncode == 0
    # Only the host's share is there: no lab, collector or control commands.
    commands = run(venv, "--help").stdout
    assert "run" in commands and "wheels" not in commands and " lab " not in commands
    check = subprocess.run([str(venv / "bin" / "python"), "-c", "import mailagent.collector"],
                           capture_output=True, text=True, env=host_env())
    assert "No module named 'mailagent.collector'" in check.stderr

    (tmp_path / "mail.log").write_text("")
    path = write_settings(tmp_path, settings, collector_url=collector.url)
    assert run(venv, "keygen", "--key", str(tmp_path / "agent.key")).returncode == 0
    registered = run(venv, "register", "--settings", path, stdin=TOKEN + "\n")
    assert registered.returncode == 0, registered.stderr
    once = run(venv, "run", "--once", "--settings", path)
    assert once.returncode == 0, once.stderr
    seen = wait_for_host(collector.url, settings.host)
    assert seen["queue"]["deferred"] == 5 and seen["queue"]["hold"] == 2
    print(f"exercised CPython {target.python} from {python}: set {target.key}")


def test_at_least_one_host_python_was_exercised():
    """Runs after the parametrized test above (file order): all of them missing is a failure."""
    missing = [m for m in MINORS if interpreter(m) is None]
    if missing:
        warnings.warn(f"Python {', '.join(missing)} NOT exercised (no pyenv interpreter)",
                      pytest.PytestWarning)
    assert len(missing) < len(MINORS), f"no Python of {MINORS} found under {PYENV}: none exercised"
