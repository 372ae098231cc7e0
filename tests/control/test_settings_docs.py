"""Every settings table in the READMEs matches its model (one generator, one drift test)."""

from __future__ import annotations

import pytest

from mailagent.control.settings_docs import ROOT, TABLES, table, update


@pytest.mark.parametrize("file", sorted({t.file for t in TABLES}))
def test_every_settings_table_matches_its_model(file):
    text = (ROOT / file).read_text()
    assert update(text, file) == text, "run: .venv/bin/python -m mailagent.control.settings_docs"


@pytest.mark.parametrize("spec", TABLES, ids=[t.name for t in TABLES])
def test_every_setting_is_described_and_listed(spec):
    rows = table(spec.model, spec.unset).splitlines()[2:]
    assert rows and all(not row.endswith("|  |") for row in rows), spec.name
    text = (ROOT / spec.file).read_text()
    assert all(row in text for row in rows)


def test_only_the_text_between_the_markers_is_rewritten():
    specs = [t for t in TABLES if t.file == "README.md"]
    text = "before\n" + "".join(f"{t.start}\nstale\n{t.end}\nbetween\n" for t in specs)
    done = update(text, "README.md")
    assert "stale" not in done and done.startswith("before\n") and done.count("between\n") == len(specs)
    assert done.endswith(f"{specs[-1].end}\nbetween\n")


def test_a_file_without_its_markers_is_refused():
    with pytest.raises(ValueError, match="relay-settings"):
        update("no markers here\n", "README.md")
