"""A command whose extra is not installed says which one to install (exit 2), not a traceback."""

from __future__ import annotations

import builtins

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


def test_help_speaks_to_users(capsys):
    try:
        main(["--help"])
    except SystemExit:
        pass
    assert "relay-only Postfix to an authenticated smarthost" in " ".join(capsys.readouterr().out.split())
