"""The settings loader stays light: every agent loads it, and keeps what it imports resident."""

from __future__ import annotations

import subprocess
import sys


def test_loading_settings_imports_no_asyncio_or_pydantic_settings():
    code = ("import sys, mailagent.agent.settings as s; s.load_settings(None, {'MAILAGENT_HOST': 'h'}); "
            "print(sorted(m for m in ('asyncio', 'pydantic_settings', 'dotenv') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
