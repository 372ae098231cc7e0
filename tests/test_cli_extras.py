"""A command whose extra is not installed says which one to install (exit 2), not a traceback."""

from __future__ import annotations

import builtins

import pytest

from mailagent.cli import main


def test_a_missing_extra_is_named(monkeypatch, capsys):
    real_import = builtins.__import__

    def without_uvicorn(name, *args, **kwargs):
        if name.split(".")[0] == "uvicorn":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_uvicorn)
    monkeypatch.setenv("MAILAGENT_COLLECTOR_DATABASE_URL", "sqlite:////nonexistent/x.db")
    assert main(["collector", "serve", "--listen", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "needs the collector extra (missing module uvicorn)" in err
    assert "pip install -e '.[collector]'" in err and "Traceback" not in err


# (command, the project module whose import would fail, the module missing, the extra named)
@pytest.mark.parametrize("command,importing,module,extra", [
    (["dns-check", "example.com"], "mailagent.control.dnscheck.checks", "dns", "deploy"),
    (["wheels", "--python", "3.13", "--machine", "x86_64", "--out", "/nonexistent"],
     "mailagent.control.wheels", "packaging", "deploy"),
    (["lab", "status", "--json"], "mailagent.lab.vm", "paramiko", "lab"),  # lab's brings deploy's
])
def test_control_machine_commands_name_their_extra(command, importing, module, extra, monkeypatch, capsys):
    real_import = builtins.__import__

    def without(name, globals=None, locals=None, fromlist=(), level=0):
        if importing in (name, *(f"{name}.{item}" for item in fromlist or ())):
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", without)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"needs the {extra} extra (missing module {module})" in err and "Traceback" not in err
    assert f"pip install -e '.[{extra}]'" in err


def test_help_speaks_to_users(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    assert "relay-only Postfix to an authenticated smarthost" in " ".join(capsys.readouterr().out.split())
