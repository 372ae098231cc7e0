"""Operations the collector role needs beyond pyinfra's own (each a no-op when in place)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents


@operation()
def venv_installed(venv: str, wheels: str, manifest: str):
    """Ensure `venv` holds exactly the wheel set whose MANIFEST is `manifest`, offline.

    The manifest is copied into the venv last, so an interrupted install is redone next run.
    (A copy of the agent role's operation of the same name, kept apart on purpose.)
    """
    stamp = f"{venv}/.mailagent-manifest"
    if host.get_fact(FileContents, path=stamp) == manifest.splitlines():
        host.noop(f"{venv} already has this wheel set")
        return
    pip = f"{venv}/bin/pip"
    project = next(line.split()[1] for line in manifest.splitlines()
                   if line.split()[1].startswith("mailagent-"))
    yield StringCommand("python3", "-m", "venv", QuoteString(venv))
    yield StringCommand(pip, "install", "--no-index", "--find-links", QuoteString(wheels),
                        "-r", QuoteString(f"{wheels}/requirements.txt"))
    yield StringCommand(pip, "install", "--no-index", "--no-deps", "--force-reinstall",
                        QuoteString(f"{wheels}/{project}"))
    yield StringCommand("cp", QuoteString(f"{wheels}/MANIFEST"), QuoteString(stamp))
