"""Host names: how a host is called in its reports, signatures, registration and certificates.

One rule for every model and check: ASCII letters, digits, dots and hyphens, starting with a
letter or digit, at most 253 characters (a DNS name's limit, and the width of the collector's
host columns). Models use `HostName`; code that checks a bare string uses `is_host_name`.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import StringConstraints

_HOST_NAME = r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}"
HOST_NAME_RE = re.compile(_HOST_NAME)
HostName = Annotated[str, StringConstraints(pattern=rf"^{_HOST_NAME}$")]


def is_host_name(text: object) -> bool:
    """True for a string that is a host name by the rule above (the whole string, no newline)."""
    return isinstance(text, str) and HOST_NAME_RE.fullmatch(text) is not None
