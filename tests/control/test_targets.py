"""Targets, `mailagent wheels` usage errors, set hashing and the prepared-folder lookup (no pip)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from pyinfra.api import DeployError

import mailagent
from mailagent.cli import _area, main
from mailagent.control import wheels
from mailagent.control.targets import UnsupportedTarget, WheelTarget, parse_target
from mailagent.control.wheels import (NoPreparedSet, SetSpec, WheelSet, agent_spec,
                                      build_set, find_prepared, set_hash, write_manifest)

DEBIAN13_ARM = WheelTarget("3.13.5", "aarch64", (2, 41))


def test_target_key_is_stable_and_parsed_back():
    assert DEBIAN13_ARM.key == "cpython3.13.5-aarch64-glibc2.41"
    assert WheelTarget.from_key(DEBIAN13_ARM.key) == DEBIAN13_ARM
    assert WheelTarget.from_key("cpython3.9.2-x86_64-glibc2.31") is None  # not a target any more
    assert WheelTarget.from_key(".build-xyz") is None
    assert DEBIAN13_ARM.abi == "cp313"
    assert DEBIAN13_ARM.platforms[:2] == ["manylinux2014_aarch64", "manylinux_2_17_aarch64"]
    assert DEBIAN13_ARM.platforms[-1] == "manylinux_2_41_aarch64" and len(DEBIAN13_ARM.platforms) == 26


def test_minor_version_picks_what_hosts_ship_and_says_so():
    target, notes = parse_target("3.13", "x86_64")
    assert target == WheelTarget("3.13.5", "x86_64", (2, 34))
    assert "3.13.5" in notes[0] and "Debian 13" in notes[0] and "2.34" in notes[1]
    assert parse_target("3.10.14", "aarch64", "2.35") == (WheelTarget("3.10.14", "aarch64", (2, 35)), [])


@pytest.mark.parametrize("argv,problem", [
    (["--python", "3.9", "--machine", "x86_64"], "--python 3.9: expected one of 3.10, 3.11, 3.12, 3.13"),
    (["--python", "3.9.18", "--machine", "x86_64"], "Python 3.9.18: the agent runs on CPython 3.10 to 3.13"),
    (["--python", "3.14.0", "--machine", "x86_64"], "Python 3.14.0: the agent runs on CPython 3.10 to 3.13"),
    (["--python", "3", "--machine", "x86_64"], "Python '3': expected a full version such as 3.13.5"),
    (["--python", "3.12", "--machine", "riscv64"], "machine 'riscv64': expected one of x86_64, aarch64"),
    (["--python", "3.12", "--machine", "x86_64", "--glibc", "2.17"], "glibc 2.17: expected 2.N with N >= 28"),
    (["--python", "3.12", "--machine", "x86_64", "--glibc", "new"], "--glibc new: expected a version"),
])
def test_wheels_command_refuses_a_target_with_one_line(argv, problem, tmp_path, capsys):
    assert main(["wheels", *argv, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"mailagent wheels: {problem}"), err
    assert list(tmp_path.iterdir()) == []


def test_wheels_command_exits_1_with_pips_tail(tmp_path, capsys, monkeypatch):
    stderr = ("WARNING: Location 'file:///x/' is ignored\n"
              "ERROR: No matching distribution found for pydantic-core==9\n")
    monkeypatch.setattr(wheels.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", stderr))
    monkeypatch.setattr("mailagent.control.wheels.agent_spec", lambda: agent_spec(tmp_path / "cache"))
    assert main(["wheels", "--python", "3.13.5", "--machine", "aarch64", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "for Python 3.13.5 on aarch64, glibc 2.34 failed (pip download)" in err
    assert err.rstrip().endswith("No matching distribution found for pydantic-core==9")
    assert "WARNING: Location" not in err and not (tmp_path / "out").exists()


def test_wheels_command_writes_the_set_under_its_target_key(tmp_path, capsys, monkeypatch):
    spec = _fake_spec(tmp_path)
    monkeypatch.setattr("mailagent.control.wheels.agent_spec", lambda: spec)
    _cached_deps(spec, WheelTarget("3.12.3", "x86_64", (2, 34)))
    monkeypatch.setattr(wheels.subprocess, "run", _no_pip)
    assert main(["wheels", "--python", "3.12", "--machine", "x86_64", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    folder = tmp_path / "out" / "cpython3.12.3-x86_64-glibc2.34"
    assert f"{folder} (2 wheels" in out and "building for 3.12.3, the version Ubuntu 24.04 ships" in out
    assert {p.name for p in folder.iterdir()} == {
        "MANIFEST", "requirements.txt", "httpx-0.27.0-py3-none-any.whl", "mailagent-0.1.0-py3-none-any.whl"}
    assert main(["wheels", "--python", "3.12", "--machine", "x86_64", "--out", str(tmp_path / "out")]) == 0


def test_set_hash_covers_the_agents_files_only(tmp_path, monkeypatch):
    package = shutil.copytree(wheels.PACKAGE, tmp_path / "mailagent",
                              ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(wheels, "PACKAGE", package)
    spec = _fake_spec(tmp_path)
    deps = _cached_deps(spec, DEBIAN13_ARM)
    first = set_hash(spec, deps)
    assert set_hash(spec, deps) == first
    (package / "collector" / "app.py").write_text("# edited\n")
    assert set_hash(spec, deps) == first  # not in the agent's wheel
    (package / "agent" / "cycle.py").write_text("# edited\n")
    assert set_hash(spec, deps) != first


def test_cached_set_needs_no_pip(tmp_path, monkeypatch):
    spec = _fake_spec(tmp_path)
    _cached_deps(spec, DEBIAN13_ARM)
    monkeypatch.setattr(wheels.subprocess, "run", _no_pip)
    built = build_set(spec, DEBIAN13_ARM)
    assert built.folder.parent == tmp_path / "cache" / DEBIAN13_ARM.key
    assert built.project_wheel.name == f"mailagent-{mailagent.__version__}-py3-none-any.whl"
    assert build_set(spec, DEBIAN13_ARM) == built
    assert not [p for p in built.folder.parent.iterdir() if p.name.startswith(".build-")]


def test_collector_set_refuses_python_3_10():
    from roles.collector.wheels import collector_spec
    with pytest.raises(UnsupportedTarget, match="the collector needs 3.11"):
        build_set(collector_spec(), WheelTarget("3.10.12", "x86_64", (2, 35)))


def test_prepared_folder_of_sets_by_target(tmp_path):
    exact = _fake_set(tmp_path / DEBIAN13_ARM.key)
    assert find_prepared(agent_spec(), tmp_path, DEBIAN13_ARM) == exact
    older = _fake_set(tmp_path / "cpython3.11.2-aarch64-glibc2.34")
    _fake_set(tmp_path / "cpython3.11.2-aarch64-glibc2.28")
    _fake_set(tmp_path / "cpython3.11.2-aarch64-glibc2.39")  # too new for the host
    _fake_set(tmp_path / "cpython3.11.2-x86_64-glibc2.36")   # another machine
    assert find_prepared(agent_spec(), tmp_path, WheelTarget("3.11.2", "aarch64", (2, 36))) == older


def test_prepared_single_set_is_used_as_it_is(tmp_path):
    single = _fake_set(tmp_path / "set")
    assert find_prepared(agent_spec(), single.folder, DEBIAN13_ARM) == single


def test_prepared_folder_without_the_hosts_set_names_the_command(tmp_path):
    _fake_set(tmp_path / "cpython3.11.2-x86_64-glibc2.36")
    with pytest.raises(NoPreparedSet) as raised:
        find_prepared(agent_spec(), tmp_path, DEBIAN13_ARM)
    assert str(raised.value) == (
        f"{tmp_path} has no agent wheel set for Python 3.13.5 on aarch64, glibc 2.41 "
        f"(cpython3.13.5-aarch64-glibc2.41); make it with: mailagent wheels --python 3.13.5 "
        f"--machine aarch64 --glibc 2.41 --out {tmp_path}")


def test_roles_raise_deploy_error_for_a_missing_prepared_set(tmp_path):
    from roles.collector.wheels import wheel_set_for as collector_set_for
    from roles.mailagent.wheels import wheel_set_for
    with pytest.raises(DeployError, match=r"^agent wheels \(mailagent_wheel_dir\): .* mailagent wheels "
                                          r"--python 3.13.5 --machine aarch64 --glibc 2.41"):
        wheel_set_for(DEBIAN13_ARM, prepared=str(tmp_path))
    with pytest.raises(DeployError, match=r"^collector wheels \(collector_wheel_dir\): .*deploy once"):
        collector_set_for(DEBIAN13_ARM, prepared=str(tmp_path))
    with pytest.raises(DeployError, match="Python 3.10.12: the collector needs 3.11"):
        collector_set_for(WheelTarget("3.10.12", "x86_64", (2, 35)), cache=tmp_path)


def test_cli_skips_areas_this_install_leaves_out(tmp_path, monkeypatch):
    assert _area("mailagent.nowhere.cli") is None
    assert _area("mailagent.nowhere.deeper.cli") is None  # as control.dnscheck.cli on a host
    (tmp_path / "brokenarea").mkdir()
    (tmp_path / "brokenarea" / "__init__.py").write_text("")
    (tmp_path / "brokenarea" / "cli.py").write_text("import mailagent_test_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="mailagent_test_absent_dependency"):
        _area("brokenarea.cli")
    monkeypatch.delitem(sys.modules, "brokenarea", raising=False)


def _fake_spec(tmp_path) -> SetSpec:
    return agent_spec(tmp_path / "cache")


def _fake_set(folder) -> WheelSet:
    folder.mkdir(parents=True)
    (folder / "mailagent-0.1.0-py3-none-any.whl").write_bytes(b"project")
    (folder / "requirements.txt").write_text("httpx>=0.27\n")
    write_manifest(folder)
    return WheelSet(folder)


def _cached_deps(spec: SetSpec, target: WheelTarget) -> WheelSet:
    """A dependency layer as pip would have left it, so no test here reaches an index."""
    folder = spec.cache / target.key / f"deps-{wheels.deps_hash(spec)}"
    folder.mkdir(parents=True)
    (folder / "httpx-0.27.0-py3-none-any.whl").write_bytes(b"dep")
    (folder / "requirements.txt").write_text(spec.requirements)
    write_manifest(folder)
    return WheelSet(folder)


def _no_pip(*args, **kwargs):
    raise AssertionError("pip ran for a cached set")
