"""The Python a service runs on, and its venv installed offline from an uploaded wheel set.

A venv that already holds the wanted set (its stamp says so) gets no uploads at all: on a
re-deploy that saves one checksum round trip per wheel (about twenty for the agent).

Shared by the agent and collector roles. Which interpreter and packages come from the host's
platform (roles/platform.py): `python3` on Debian and Ubuntu, the OS's own `python3.11` where
the default python3 is older than 3.10 (RHEL 9, Amazon Linux 2023).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, dnf, files

from roles.platform import Platform
from roles.wheelhouse import WheelSet


def python_installed(platform: Platform):
    """Install the interpreter the services run on (with venv support)."""
    release = platform.release
    packages = list(release.python_packages)
    if release.family == "rhel":
        return dnf.packages(name=f"Install {release.python}", packages=packages)
    return apt.packages(name=f"Install {release.python} with venv", packages=packages,
                        update=True, cache_time=3600)


def wheels_installed(what: str, wheels: WheelSet, folder: str, venv: str, python: str):
    """Upload `wheels` into `folder` and install `venv` from them, offline (venv_installed).

    The uploads are skipped when the venv already has this set; the returned operation changes
    only when the venv is (re)made.
    """
    files.directory(name=f"Create {folder}", path=folder, user="root", group="root", mode="755")
    if not _has_set(venv, wheels.manifest, python):
        for wheel in wheels.files:
            files.put(name=f"Upload {wheel.name}", src=str(wheel), dest=f"{folder}/{wheel.name}", mode="644")
        for name in ("requirements.txt", "MANIFEST"):
            files.put(name=f"Upload {folder}/{name}", src=str(wheels.folder / name),
                      dest=f"{folder}/{name}", mode="644")
    return venv_installed(name=f"Install {what} into {venv} (offline, from the uploaded wheels)",
                          venv=venv, wheels=folder, manifest=wheels.manifest, python=python)


def _stamp(venv: str) -> str:
    return f"{venv}/.mailagent-manifest"


def _has_set(venv: str, manifest: str, python: str) -> bool:
    """Whether `venv` was made by `python` from the wheel set whose MANIFEST is `manifest`."""
    return host.get_fact(FileContents, path=_stamp(venv)) == [*manifest.splitlines(), f"python {python}"]


@operation()
def venv_installed(venv: str, wheels: str, manifest: str, python: str = "python3"):
    """Ensure `venv` holds exactly the wheel set whose MANIFEST is `manifest`, offline.

    The manifest is copied into the venv last, so an interrupted install is redone next run.
    A venv made by another interpreter (an OS upgrade, a new platform row) is made anew.
    """
    stamp = _stamp(venv)
    if _has_set(venv, manifest, python):
        host.noop(f"{venv} already has this wheel set")
        return
    pip = f"{venv}/bin/pip"
    project = next(line.split()[1] for line in manifest.splitlines()
                   if line.split()[1].startswith("mailagent-"))
    yield StringCommand("rm", "-rf", QuoteString(venv))
    yield StringCommand(python, "-m", "venv", QuoteString(venv))
    yield StringCommand(pip, "install", "--no-index", "--find-links", QuoteString(wheels),
                        "-r", QuoteString(f"{wheels}/requirements.txt"))
    yield StringCommand(pip, "install", "--no-index", "--no-deps", "--force-reinstall",
                        QuoteString(f"{wheels}/{project}"))
    yield StringCommand("sh", "-c", QuoteString('cp "$1/MANIFEST" "$2" && echo "python $3" >> "$2"'),
                        "-", QuoteString(wheels), QuoteString(stamp), QuoteString(python))
