"""The wheel sets' requirements come from pyproject.toml's one list: core plus the side's extra."""

from __future__ import annotations

from email.message import Message

import pytest
from packaging.requirements import Requirement

from mailagent.control import requirements as declared
from mailagent.control.requirements import from_metadata, requirements, requirements_txt
from mailagent.control.wheels import agent_spec
from roles.collector.wheels import collector_spec

CONTROL_ONLY = ("pyinfra", "paramiko", "dnspython", "packaging")
PYPROJECT = """\
[project]
name = "mailagent"
dependencies = ["pydantic>=2.6,<3", "tomli>=2; python_version < '3.11'"]

[project.optional-dependencies]
agent = ["httpx>=0.27"]
deploy = ["pyinfra~=3.10"]
collector = ["mailagent[agent]", "fastapi>=0.110", "exceptiongroup; python_version < '3.11'"]
"""
# The same declarations as setuptools writes them into the installed metadata.
REQUIRES_DIST = ['pydantic<3,>=2.6', 'tomli>=2; python_version < "3.11"', 'httpx>=0.27; extra == "agent"',
                 'pyinfra~=3.10; extra == "deploy"', 'mailagent[agent]; extra == "collector"',
                 'fastapi>=0.110; extra == "collector"',
                 'exceptiongroup; python_version < "3.11" and extra == "collector"']
EXTRAS = ["agent", "deploy", "collector"]


def names(lines: list[str]) -> set[str]:
    return {Requirement(line).name for line in lines}


def test_hosts_get_core_and_their_extra_only():
    agent = agent_spec().requirements.splitlines()
    assert agent == requirements("agent")
    assert {"pydantic", "httpx", "cryptography", "jinja2", "tomli"} == names(agent)
    assert 'tomli>=2; python_version < "3.11"' in agent  # its own marker kept for closure.py
    collector = collector_spec().requirements.splitlines()
    assert {"httpx", "fastapi", "uvicorn", "sqlalchemy", "alembic", "psycopg", "pynacl"} <= names(collector)
    for lines in (agent, collector):
        assert not names(lines) & set(CONTROL_ONLY) and not any("extra" in line for line in lines)


def test_the_checkout_wins_over_an_installs_stale_metadata(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT.replace("httpx>=0.27", "httpx>=0.28"))
    _metadata(monkeypatch, REQUIRES_DIST)  # what `pip install -e` recorded before the edit
    assert requirements("agent", tmp_path) == ["pydantic<3,>=2.6", 'tomli>=2; python_version < "3.11"',
                                               "httpx>=0.28"]


def test_without_a_checkout_the_metadata_gives_the_same_lines(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    from_checkout = {extra: requirements(extra, tmp_path) for extra in EXTRAS}
    _metadata(monkeypatch, REQUIRES_DIST)
    assert {extra: requirements(extra, tmp_path / "installed") for extra in EXTRAS} == from_checkout
    assert from_checkout["collector"] == ["pydantic<3,>=2.6", 'tomli>=2; python_version < "3.11"',
                                          "httpx>=0.27", "fastapi>=0.110",
                                          'exceptiongroup; python_version < "3.11"']
    (tmp_path / "other").mkdir()  # another project's pyproject.toml is not ours
    (tmp_path / "other" / "pyproject.toml").write_text(PYPROJECT.replace('"mailagent"', '"other"', 1)
                                                       .replace("fastapi", "starlette"))
    assert requirements("collector", tmp_path / "other") == from_checkout["collector"]
    assert requirements_txt("agent", None).endswith("httpx>=0.27\n")


def test_setuptools_marker_forms_lose_only_the_extra():
    core, extras = from_metadata(['a>=1; python_version < "3.11"',
                                  'b; (python_version < "3.11") and extra == "x"', "c; extra == 'x'"], ["x", "y"])
    assert core == ['a>=1; python_version < "3.11"']
    assert extras == {"x": ['b; python_version < "3.11"', "c"], "y": []}


def test_an_undeclared_extra_is_named():
    with pytest.raises(KeyError, match="declares no extra 'hosts'"):
        requirements("hosts")


def _metadata(monkeypatch, lines: list[str]) -> None:
    meta = Message()
    for extra in EXTRAS:
        meta["Provides-Extra"] = extra
    monkeypatch.setattr(declared.metadata, "requires", lambda name: list(lines))
    monkeypatch.setattr(declared.metadata, "metadata", lambda name: meta)
