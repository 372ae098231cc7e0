"""inventories/vagrant.py and the Vagrantfile agree, without booting anything."""

from __future__ import annotations

import json
import re
import runpy
import subprocess
from pathlib import Path

import pytest

from mailagent import pki

PROJECT = Path(__file__).resolve().parents[2]
INVENTORY = PROJECT / "inventories" / "vagrant.py"


@pytest.fixture
def sink_lab(tmp_path, monkeypatch):
    """A lab dir holding what `mailagent lab sink start` leaves: credentials and the CA."""
    sink = tmp_path / "lab" / "sink"
    sink.mkdir(parents=True)
    (sink / "credentials.json").write_text(json.dumps({"username": "lab-relay", "password": "pw-1"}))
    pki.create_ca(sink / "ca", "test CA")
    monkeypatch.setenv("MAILAGENT_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setenv("MAILAGENT_VAGRANT_STATE", str(tmp_path / "state"))
    for name in ("MAILAGENT_RELAYS", "MAILAGENT_HUB", "MAILAGENT_COLLECTOR", "MAILAGENT_SINK_HOST"):
        monkeypatch.delenv(name, raising=False)
    return sink


def groups(namespace: dict) -> dict[str, list]:
    """What pyinfra makes groups of: public module-level lists."""
    return {k: v for k, v in namespace.items() if not k.startswith("_") and isinstance(v, list)}


def test_default_is_two_relays_pointing_at_the_sink_on_the_libvirt_gateway(sink_lab):
    found = groups(runpy.run_path(str(INVENTORY)))
    assert list(found) == ["relays"]
    names = [name for name, _ in found["relays"]]
    assert names == ["@vagrant/relay1", "@vagrant/relay2"]
    data = found["relays"][0][1]
    assert data["etc_hosts"] == {"sink.lab.mailagent.test": "192.168.121.1"}
    assert data["ssh_known_hosts_file"] == "/dev/null" and data["_sudo"] is True
    relay = data["relay"]
    assert (relay["host"], relay["port"], relay["username"], relay["password"]) == (
        "sink.lab.mailagent.test", 2587, "lab-relay", "pw-1")
    assert relay["ca_pem"] == (sink_lab / "ca" / pki.CA_CERT).read_text()


def test_hub_and_collector_when_asked(sink_lab, monkeypatch):
    monkeypatch.setenv("MAILAGENT_RELAYS", "1")
    monkeypatch.setenv("MAILAGENT_HUB", "1")
    monkeypatch.setenv("MAILAGENT_COLLECTOR", "yes")
    monkeypatch.setenv("MAILAGENT_SINK_HOST", "10.0.2.2")
    found = groups(runpy.run_path(str(INVENTORY)))
    assert {k: [n for n, _ in v] for k, v in found.items()} == {
        "relays": ["@vagrant/relay1"], "hub": ["@vagrant/hub"], "collector": ["@vagrant/collector"]}
    relay = found["relays"][0][1]
    assert relay["etc_hosts"]["sink.lab.mailagent.test"] == "10.0.2.2"
    assert relay["collector"]["url"] == "https://collector.lab.mailagent.test:8480"
    assert relay["collector"]["registration_token"]
    assert found["collector"][0][1]["collector_server"]["tls"]["names"] == ["collector.lab.mailagent.test"]


def test_missing_sink_is_one_clear_error(tmp_path, monkeypatch):
    from pyinfra.api.exceptions import InventoryError

    monkeypatch.setenv("MAILAGENT_LAB_DIR", str(tmp_path))
    monkeypatch.delenv("MAILAGENT_SINK_PASSWORD", raising=False)
    with pytest.raises(InventoryError, match="start the sink first"):
        runpy.run_path(str(INVENTORY))


def test_vagrantfile_addresses_match_the_inventory(sink_lab):
    """The inventory names the hub and collector by the addresses the Vagrantfile gives them."""
    inventory = runpy.run_path(str(INVENTORY))
    text = (PROJECT / "Vagrantfile").read_text()
    net = re.search(r'^net = "([0-9.]+)"', text, re.M).group(1)

    def address(machine: str) -> str:
        return f"{net}." + re.search(rf'\["{machine}", "#{{net}}\.(\d+)"\]', text).group(1)

    assert (inventory["HUB_IP"], inventory["COLLECTOR_IP"]) == (address("hub"), address("collector"))


def test_vagrant_validate_accepts_every_topology(tmp_path):
    for env in ({}, {"MAILAGENT_RELAYS": "3", "MAILAGENT_HUB": "1", "MAILAGENT_COLLECTOR": "1",
                     "MAILAGENT_PROVISION": "1"}):
        done = subprocess.run(["vagrant", "validate"], cwd=PROJECT, capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                                "VAGRANT_HOME": str(tmp_path / "home"),
                                                "VAGRANT_DOTFILE_PATH": str(tmp_path / "machines"),
                                                "VAGRANT_CHECKPOINT_DISABLE": "1", **env})
        assert done.returncode == 0, done.stdout + done.stderr


def test_vagrantfile_box_follows_the_debian_release(tmp_path):
    """debian/trixie64 by default, debian/bookworm64 with MAILAGENT_DEBIAN=12, MAILAGENT_BOX wins;
    an unknown release stops the Vagrantfile with a one-line reason."""
    # The project's Vagrantfile under a stand-in `Vagrant.configure` that records the box.
    stub = ("class Rec; def method_missing(n, *a, &b); $box = a[0] if n == :box=; b&.call(Rec.new); self; end; "
            "def respond_to_missing?(*) = true; end; "
            "module Vagrant; def self.configure(_v); yield Rec.new; end; end; "
            f"load {str(PROJECT / 'Vagrantfile')!r}; puts \"BOX=#{{$box}}\"")

    def box(**env) -> subprocess.CompletedProcess:
        return subprocess.run(["ruby", "-e", stub], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", **env})

    assert box().stdout.strip() == "BOX=debian/trixie64"
    assert box(MAILAGENT_DEBIAN="12").stdout.strip() == "BOX=debian/bookworm64"
    assert box(MAILAGENT_DEBIAN="12", MAILAGENT_BOX="my/box").stdout.strip() == "BOX=my/box"
    bad = box(MAILAGENT_DEBIAN="11")
    assert bad.returncode != 0 and "MAILAGENT_DEBIAN=11" in bad.stderr


def test_box_recipe_per_release(tmp_path, monkeypatch):
    from mailagent.lab import image
    from mailagent.vagrantlab import box as vbox

    new, old = vbox.recipe(image.suite("13")), vbox.recipe(image.suite("12"))
    assert image.recipe_hash(new) != image.recipe_hash(old)
    assert (new["files"]["etc/hostname"], old["files"]["etc/hostname"]) == ("debian13\n", "debian12\n")
    assert vbox.box_name(image.suite("13")) == "debian/trixie64"
    monkeypatch.setenv("MAILAGENT_VAGRANT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(vbox.Box, "complete", lambda self: True)
    built = vbox.ensure_box(progress=lambda _m: None)
    assert built.name == "debian/trixie64" and built.box_file.name == "debian-trixie64.box"
    assert built.folder.name.startswith("trixie-")


def test_every_box_skips_the_dns_preflight(sink_lab, monkeypatch):
    # the boxes' sender names are in no public DNS, and tests send DNS only to loopback
    monkeypatch.setenv("MAILAGENT_HUB", "1")
    monkeypatch.setenv("MAILAGENT_COLLECTOR", "yes")
    found = groups(runpy.run_path(str(INVENTORY)))
    assert {data.get("dns_check") for hosts in found.values() for _, data in hosts} == {"off"}
