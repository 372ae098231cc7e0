"""One host-name rule for every model and check (mailagent.names)."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from mailagent.names import HostName, is_host_name

GOOD = ["relay1", "web-1.eu.example.com", "10.0.2.15", "a" * 253]
BAD = ["", "-relay", ".relay", "relay 1", "relay1\n", "relay_1", "réseau", "a" * 254, None, 5]


@pytest.mark.parametrize("name", GOOD)
def test_host_names(name):
    assert is_host_name(name)
    assert TypeAdapter(HostName).validate_python(name) == name


@pytest.mark.parametrize("name", BAD)
def test_not_host_names(name):
    assert not is_host_name(name)
    with pytest.raises(ValidationError):
        TypeAdapter(HostName).validate_python(name)
