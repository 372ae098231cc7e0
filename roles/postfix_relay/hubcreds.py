"""Fill in a fleet host's hub credentials and CA, derived on the control machine at deploy time.

A profile with `provider: hub` (or a `drain_relay`) names no password: the deploy derives this
host's password from the project secret (mailagent.control.hub.credentials) and trusts the
project CA, both found in host data `mailagent_pki_dir`. Nothing of it is in the inventory or the
output.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pyinfra.api import DeployError

from mailagent import pki
from mailagent.control.hub import credentials
from mailagent.relay.profile import RelayProfile
from roles.certificates import CA_NAME


def with_hub_credentials(profile: RelayProfile, host) -> RelayProfile:
    """The profile with the host's hub login, password and CA filled in where it needs them."""
    if profile.provider != "hub" and profile.drain_relay is None:
        return profile
    folder = credentials.pki_dir(host.data.get("mailagent_pki_dir"))
    try:
        login = credentials.login_for(host.name)
        secret = SecretStr(credentials.password_for(folder, login))
    except (credentials.CredentialError, OSError) as exc:
        raise DeployError(f"{host.name}: hub credentials: {exc}") from None
    update = {}
    if profile.provider == "hub" and not profile.username:
        update |= {"username": login, "password": secret}
    if profile.provider == "hub" and not (profile.ca_pem or profile.ca_file):
        update["ca_pem"] = _project_ca(folder, host)
    drain = profile.drain_relay
    if drain is not None:
        filled = {}
        if not drain.username:
            filled |= {"username": login, "password": secret}
        if not (drain.ca_pem or profile.ca_pem or update.get("ca_pem")):
            filled["ca_pem"] = _project_ca(folder, host)
        update["drain_relay"] = drain.model_copy(update=filled)
    return profile.model_copy(update=update)


def _project_ca(folder: Path, host) -> str:
    """The project CA's certificate, made now if this is the first deploy (the hub's deploy
    issues its certificate from the same CA, whichever host is prepared first)."""
    try:
        cert, _ = pki.create_ca(folder, CA_NAME)
    except (pki.PkiError, OSError) as exc:
        raise DeployError(f"{host.name}: relay: the project CA in {folder}: {exc}") from None
    return cert.read_text()
