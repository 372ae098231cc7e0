"""`mailagent pki init`: the fleet CA, made once and kept."""

from __future__ import annotations

import stat

from mailagent.cli import main


def test_init_makes_the_ca_then_keeps_it(tmp_path, capsys):
    folder = tmp_path / "pki" / "fleet-ca"
    assert main(["pki", "init", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("made the fleet CA: ")
    first = (folder / "ca.pem").read_bytes()
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    assert main(["pki", "init", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("kept the fleet CA: ")
    assert (folder / "ca.pem").read_bytes() == first


def test_a_broken_ca_is_refused_with_one_line(tmp_path, capsys):
    folder = tmp_path / "ca"
    assert main(["pki", "init", str(folder)]) == 0
    (folder / "ca.key").write_text("not a key\n")
    assert main(["pki", "init", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mailagent pki init: ") and len(err.strip().splitlines()) == 1
