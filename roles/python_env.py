"""The Python a service runs on, and its venv installed offline from an uploaded wheel set.

Shared by the agent and collector roles. Which interpreter and packages come from the host's
platform (roles/platform.py): `python3` on Debian and Ubuntu, the OS's own `python3.11` where
the default python3 is older than 3.10 (RHEL 9, Amazon Linux 2023).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, dnf

from roles.platform import Platform


def python_installed(platform: Platform):
    """Install the interpreter the services run on (with venv support)."""
    release = platform.release
    packages = list(release.python_packages)
    if release.family == "rhel":
        return dnf.packages(name=f"Install {release.python}", packages=packages)
    return apt.packages(name=f"Install {release.python} with venv", packages=packages,
                        update=True, cache_time=3600)


@operation()
def venv_installed(venv: str, wheels: str, manifest: str, python: str = "python3"):
    """Ensure `venv` holds exactly the wheel set whose MANIFEST is `manifest`, offline.

    The manifest is copied into the venv last, so an interrupted install is redone next run.
    A venv made by another interpreter (an OS upgrade, a new platform row) is made anew.
    """
    stamp = f"{venv}/.mailagent-manifest"
    wanted = [*manifest.splitlines(), f"python {python}"]
    if host.get_fact(FileContents, path=stamp) == wanted:
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
