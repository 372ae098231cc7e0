"""The README's DNS readiness section: its example output is what the command prints against the
zones in zones.README_ZONES, and its settings table is generated from DnsSettings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from mailagent.control.settings_docs import update
from tests.control.dnscheck.nsd import NsdServer
from tests.control.dnscheck.zones import README_ZONES

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text()
SECTION = README.split("## DNS readiness (`mailagent dns-check`)", 1)[1].split("\n## ", 1)[0]


def test_readme_settings_table_matches_the_model():
    assert update(README, "README.md") == README, "run: python -m mailagent.control.settings_docs"


def test_readme_example_output_is_what_the_command_prints(tmp_path):
    block = re.search(r"^```\n\$ \.venv/bin/(mailagent dns-check [^\n]+)\n(.*?)^```", SECTION, re.M | re.S)
    command, shown = block.group(1).split(), block.group(2)
    with NsdServer(tmp_path, README_ZONES) as server:
        done = subprocess.run([sys.executable, "-m", "mailagent", *command[1:],
                               "--nameserver", server.nameserver],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1, done.stderr  # the example has a failing finding
    assert done.stdout == shown
