"""The QEMU lab: unit tests of its pure parts, then real booted VMs (`-m lab`)."""

from __future__ import annotations

import json
import os
import runpy
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mailagent.lab import image, paths, ssh, vm
from mailagent.lab import state as lab_state
from tests.lab.conftest import lab_processes

REPO = Path(__file__).resolve().parents[2]

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""

ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main
deb http://mirror.example/debian bookworm-updates main
deb http://security.example/debian-security bookworm-security main contrib
"""


def _state(tmp_path: Path) -> dict:
    return {"lab_dir": str(tmp_path), "accel": "tcg",
            "gateway": "10.0.2.2", "sink": None, "collector": None,
            "hosts": [{"name": "relay1", "group": "relays",
                       "os": {"id": "debian", "version": "13", "suite": "trixie"},
                       "ssh_key": str(tmp_path / "img" / "id_ed25519"), "ssh_host": "127.0.0.1", "ssh_port": 40022,
                       "smtp_port": 40025, "pid": 1234, "overlay": str(tmp_path / "relay1.qcow2"),
                       "serial_log": str(tmp_path / "relay1.serial.log")}]}


# --- unit tests -------------------------------------------------------------------------------


def test_mirrors_from_deb822_sources():
    assert paths.parse_deb822(DEB822) == {
        "main": "http://mirror.example/debian", "security": "http://mirror.example/debian-security"}


def test_mirrors_from_one_line_sources_list():
    assert paths.parse_one_line(ONE_LINE) == {
        "main": "http://mirror.example/debian", "security": "http://security.example/debian-security"}


def test_host_mirrors_reads_both_formats_and_prefers_deb822(tmp_path):
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    (tmp_path / "etc/apt/sources.list").write_text(ONE_LINE)
    assert paths.host_mirrors(tmp_path) == paths.Mirrors(
        "http://mirror.example/debian", "http://security.example/debian-security")
    (tmp_path / "etc/apt/sources.list.d/debian.sources").write_text(DEB822)
    assert paths.host_mirrors(tmp_path).security == "http://mirror.example/debian-security"


def test_host_mirrors_without_any_source_names_the_folder(tmp_path):
    with pytest.raises(LookupError, match=str(tmp_path)):
        paths.host_mirrors(tmp_path)


def test_suites_map_versions_and_names_and_default_to_13():
    assert image.suite().name == "trixie" and image.suite(12).name == "bookworm"
    assert image.suite("bookworm") is image.suite("12")
    assert image.suite("13").os_info() == {"id": "debian", "version": "13", "suite": "trixie"}
    with pytest.raises(ValueError, match="12 \\(bookworm\\), 13 \\(trixie\\)"):
        image.suite("11")


def test_each_suite_has_its_own_recipe_and_image_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("MAILAGENT_CACHE_DIR", str(tmp_path))
    old, new = image.recipe("12"), image.recipe("13")
    assert (old["suite"], new["suite"]) == ("bookworm", "trixie")
    assert image.recipe_hash(old) != image.recipe_hash(new)
    assert image.image_for("12").folder == tmp_path / f"bookworm-{image.recipe_hash(old)}"
    assert image.image_for("13").folder == tmp_path / f"trixie-{image.recipe_hash(new)}"
    assert paths.debs_dir("trixie") != paths.debs_dir("bookworm")


def test_renamed_packages_follow_the_suite_table():
    release = image.Suite("99", "future", renamed=(("dbus", "dbus-broker"), ("less", None)))
    assert release.packages(("dbus", "less", "udev")) == ("dbus-broker", "udev")
    assert set(image.suite("13").packages()) >= {"linux-image-amd64", "openssh-server", "python3"}


def test_guest_apt_sources_in_each_release_format():
    mirrors = paths.Mirrors("http://mirror.example/debian", "http://mirror.example/debian-security")
    rel, text = image.apt_sources(mirrors, image.suite("12"))
    assert rel == "etc/apt/sources.list"
    assert text.splitlines() == ["deb http://mirror.example/debian bookworm main",
                                 "deb http://mirror.example/debian bookworm-updates main",
                                 "deb http://mirror.example/debian-security bookworm-security main"]
    assert paths.parse_one_line(text) == {"main": mirrors.main, "security": mirrors.security}
    rel, text = image.apt_sources(mirrors, image.suite("13"))
    assert rel == "etc/apt/sources.list.d/debian.sources"
    assert "Suites: trixie trixie-updates\n" in text and "Suites: trixie-security\n" in text
    assert paths.parse_deb822(text) == {"main": mirrors.main, "security": mirrors.security}
    rel, text = image.apt_sources(paths.Mirrors("http://mirror.example/debian"), image.suite("13"))
    assert "security" not in text


def test_host_mirrors_of_a_trixie_control_machine(tmp_path):
    (tmp_path / "etc/apt/sources.list.d").mkdir(parents=True)
    mirrors = paths.Mirrors("http://mirror.example/debian", "http://mirror.example/debian-security")
    (tmp_path / "etc/apt/sources.list.d/debian.sources").write_text(
        image.apt_sources(mirrors, image.suite("13"))[1])
    assert paths.host_mirrors(tmp_path) == mirrors


def test_recipe_hash_is_stable_and_follows_the_recipe():
    spec = image.recipe()
    assert image.recipe_hash() == image.recipe_hash(spec) == image.recipe_hash(dict(reversed(spec.items())))
    assert len(image.recipe_hash()) == 16
    changed = dict(spec, packages=[*spec["packages"], "vim"])
    assert image.recipe_hash(changed) != image.recipe_hash(spec)
    assert image.recipe_hash(dict(spec, build_script_version=-1)) != image.recipe_hash(spec)


def test_free_ports_are_distinct_bindable_and_avoid_taken():
    taken = vm.free_ports(3)
    ports = vm.free_ports(10, taken=taken)
    assert len(set(ports)) == 10 and not set(ports) & set(taken)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_state_round_trip_is_private_and_atomic(tmp_path):
    path = lab_state.save(_state(tmp_path))
    assert path == tmp_path / "state.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert lab_state.load(tmp_path) == dict(_state(tmp_path), version=2)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_state_load_errors_are_lab_not_running(tmp_path):
    with pytest.raises(lab_state.LabNotRunning, match="lab up"):
        lab_state.load(tmp_path)
    (tmp_path / "state.json").write_text(json.dumps(dict(_state(tmp_path), accel="hvf")))
    with pytest.raises(lab_state.LabNotRunning, match="accel"):
        lab_state.load(tmp_path)
    # A lab of the previous recipe (version 1: one key, hosts without `os`) does not load.
    old = dict(_state(tmp_path), version=1, ssh_key="/k")
    old["hosts"] = [{k: v for k, v in h.items() if k not in ("os", "ssh_key")} for h in old["hosts"]]
    (tmp_path / "state.json").write_text(json.dumps(old))
    with pytest.raises(lab_state.LabNotRunning, match="version"):
        lab_state.load(tmp_path)


def test_accel_choice(tmp_path):
    assert vm.choose_accel({"MAILAGENT_LAB_ACCEL": "kvm"}, tmp_path) == "kvm"
    assert vm.choose_accel({}, tmp_path) == "tcg"  # no /dev/kvm
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev/kvm").touch()
    assert vm.choose_accel({}, tmp_path) == "kvm"
    (tmp_path / "sys/module/kvm_pvm").mkdir(parents=True)
    assert vm.choose_accel({}, tmp_path) == "tcg"
    assert vm.choose_accel({"MAILAGENT_LAB_ACCEL": "KVM"}, tmp_path) == "kvm"


def test_host_names_and_groups():
    assert vm.host_names(2, hub=False) == [("relay1", "relays"), ("relay2", "relays")]
    assert vm.host_names(1, hub=True) == [("relay1", "relays"), ("hub", "hub")]


def test_plan_mixes_releases_in_one_lab():
    assert vm.plan(2, True, "13", {"old1": "12"}) == [
        ("relay1", "relays", "13"), ("relay2", "relays", "13"), ("hub", "hub", "13"),
        ("old1", "relays", "12")]
    assert vm.plan(1, False) == [("relay1", "relays", image.DEFAULT_DEBIAN)]
    assert vm.plan(0, False, None, {"old1": "bookworm"}) == [("old1", "relays", "12")]
    with pytest.raises(ValueError, match="distinct"):
        vm.plan(1, False, "13", {"relay1": "12"})
    with pytest.raises(ValueError, match="not a lab suite"):
        vm.plan(1, False, "11")


def test_matches_compares_names_releases_and_images(tmp_path, monkeypatch):
    monkeypatch.setenv("MAILAGENT_CACHE_DIR", str(tmp_path / "cache"))
    state = _state(tmp_path)
    state["hosts"][0]["ssh_key"] = str(image.image_for("13").ssh_key)
    assert vm.matches(state, 1, False, "13")
    assert not vm.matches(state, 1, False, "12") and not vm.matches(state, 2, False, "13")
    state["hosts"][0]["ssh_key"] = str(tmp_path / "trixie-0ldrecipe" / "id_ed25519")
    assert not vm.matches(state, 1, False, "13")  # a lab of an older recipe


def test_down_and_up_clean_what_a_stale_lab_left(tmp_path):
    """What a lab leaves behind (a dead VM's state, the collector's database with the old VMs'
    keys, the sink's store) is gone after `clean`, so the next lab registers its hosts anew."""
    lab_state.save(dict(_state(tmp_path), hosts=[dict(_state(tmp_path)["hosts"][0], pid=None)]))
    for rel in ("collector/collector.db", "collector/runtime.json", "sink/messages.jsonl", "relay1.qcow2"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("{}" if rel.endswith(".json") else "x")
    (tmp_path / "relay1.serial.log").write_text("boot\n")
    assert vm._left_behind(tmp_path) and not vm.healthy(tmp_path)
    vm.down(tmp_path, progress=lambda _m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay1.serial.log"]
    assert not vm._left_behind(tmp_path)
    # An unreadable state (an older format) is cleaned the same way by `down`.
    (tmp_path / "state.json").write_text('{"version": 1}')
    (tmp_path / "collector").mkdir()
    vm.down(tmp_path, progress=lambda _m: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relay1.serial.log"]


def test_qemu_command_forwards_only_loopback_ports(tmp_path):
    cmd = vm.qemu_command(_state(tmp_path), "relay1")
    netdev = cmd[cmd.index("-netdev") + 1]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in netdev and "hostfwd=tcp:127.0.0.1:40025-:25" in netdev
    assert cmd[cmd.index("-accel") + 1] == "tcg" and "-daemonize" in cmd
    assert "systemd.hostname=relay1" in cmd[cmd.index("-append") + 1]


def test_lab_inventory_groups_and_sink_ports(tmp_path, monkeypatch):
    state = _state(tmp_path)
    state["hosts"] += [dict(state["hosts"][0], name=f"relay{i}") for i in (2, 3, 4)]
    state["hosts"].append(dict(state["hosts"][0], name="hub", group="hub"))
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    state["sink"] = {"hostname": "sink.lab.mailagent.test", "username": "u", "password": "p",
                     "ca_cert": str(tmp_path / "ca.pem")}
    lab_state.save(state)
    monkeypatch.setenv("MAILAGENT_LAB_DIR", str(tmp_path))
    monkeypatch.setenv("MAILAGENT_LAB_VIA", "sink")
    groups = _groups()
    assert sorted(groups) == ["hub", "relays"]
    relays = dict(groups["relays"])
    assert relays["relay1"]["lab_os"] == {"id": "debian", "version": "13", "suite": "trixie"}
    assert [relays[f"relay{i}"]["relay"]["port"] for i in (1, 2, 3, 4)] == [2587, 2465, 2525, 2587]
    assert relays["relay1"]["relay"]["ca_pem"].startswith("-----BEGIN")
    assert relays["relay1"]["relay"]["drain_relay"] == {"host": "hub.lab.mailagent.test", "port": 1587}
    assert relays["relay1"]["mailagent_pki_dir"] == str(tmp_path)
    hub = dict(groups["hub"])["hub"]
    assert relays["relay1"]["ssh_user"] == "root" and hub["relay"]["port"] == 2587
    assert hub["hub_server"] == {"names": ["hub.lab.mailagent.test"]}
    # By default a lab with a hub sends the relays' mail through it, alternating its two ports.
    monkeypatch.delenv("MAILAGENT_LAB_VIA")
    relays = dict(_groups()["relays"])
    assert [(relays[f"relay{i}"]["relay"]["provider"], relays[f"relay{i}"]["relay"]["port"])
            for i in (1, 2, 3)] == [("hub", 1587), ("hub", 1465), ("hub", 1587)]
    assert "password" not in relays["relay1"]["relay"]  # derived by the deploy, never in the inventory


def _groups() -> dict:
    inventory = runpy.run_path(str(REPO / "inventories/lab.py"))
    return {k: v for k, v in inventory.items() if isinstance(v, list | tuple) and not k.startswith("_")}


# --- real VMs ---------------------------------------------------------------------------------


@pytest.mark.lab
@pytest.mark.timeout(1500)
def test_vms_boot_with_systemd_running(lab):
    assert [h["name"] for h in lab["hosts"]][:2] == ["relay1", "relay2"]
    for entry in lab["hosts"]:
        rc, out, _ = ssh.run(lab, entry["name"], "systemctl is-system-running --wait; hostname", timeout=300)
        state, hostname = out.split()
        assert state in ("running", "degraded") and hostname == entry["name"]


@pytest.mark.lab
@pytest.mark.timeout(1500)
def test_guest_reaches_host_loopback_through_gateway(lab):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(120)
        greeting = []
        threading.Thread(target=lambda: greeting.append(_greet(server)), daemon=True).start()
        probe = ("import socket; s = socket.create_connection(('sink.lab.mailagent.test', %d), 30); "
                 "print(s.recv(64).decode())" % server.getsockname()[1])
        rc, out, err = ssh.run(lab, "relay1", ["python3", "-c", probe], timeout=120)
    assert (rc, out.strip()) == (0, "hello from the host"), err
    assert greeting == ["127.0.0.1"]  # QEMU's user net delivers guest traffic from loopback


def _greet(server: socket.socket) -> str:
    conn, (peer, _) = server.accept()
    with conn:
        conn.sendall(b"hello from the host\n")
    return peer


@pytest.mark.lab
@pytest.mark.timeout(1500)
def test_guest_apt_installs_from_the_local_deb_cache(lab):
    # --reinstall: the proof holds even when a deploy already installed it; --no-download fails
    # unless the .deb is in the guest's own cache.
    rc, out, err = ssh.run(lab, "relay1", "ls /var/cache/apt/archives/sasl2-bin_*.deb && "
                           "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall --no-download "
                           "sasl2-bin && dpkg-query -W -f '${Status}' sasl2-bin", timeout=900)
    assert rc == 0, out + err
    assert out.endswith("install ok installed")


@pytest.mark.lab
@pytest.mark.timeout(1500)
def test_kill_hard_and_boot_keep_the_disk(lab):
    name = lab["hosts"][-1]["name"]
    assert ssh.run(lab, name, "echo survived > /root/lab-marker && sync", timeout=120)[0] == 0
    old_pid = lab_state.host(lab, name)["pid"]
    vm.kill_hard(lab, name)
    assert not vm.is_running(old_pid, lab_state.host(lab, name)["overlay"])
    assert lab_state.load(lab["lab_dir"])["hosts"][-1]["pid"] is None
    vm.boot(lab, name)
    assert lab_state.load(lab["lab_dir"])["hosts"][-1]["pid"] == lab_state.host(lab, name)["pid"] != old_pid
    assert ssh.run(lab, name, "cat /root/lab-marker", timeout=120) == (0, "survived\n", "")


@pytest.mark.lab
@pytest.mark.timeout(1500)
def test_cli_lab_up_status_ssh_down_leaves_nothing(tmp_path):
    env = dict(os.environ, MAILAGENT_LAB_DIR=str(tmp_path))
    cli = [sys.executable, "-m", "mailagent", "lab"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=900)

    try:
        up = run("up", "--hosts", "1", "--no-sink", "--no-collector")
        assert up.returncode == 0, up.stdout + up.stderr
        assert "relay1: ssh up" in up.stdout
        assert run("up", "--hosts", "1", "--no-sink", "--no-collector").returncode == 1  # already up
        status = json.loads(run("status", "--json").stdout)
        assert [h["name"] for h in status["hosts"]] == ["relay1"]
        assert lab_processes(tmp_path) == [status["hosts"][0]["pid"]]
        hostname = run("ssh", "relay1", "--", "hostname")
        assert (hostname.returncode, hostname.stdout) == (0, "relay1\n")
        assert run("ssh", "relay1", "--", "exit 3").returncode == 3
    finally:
        down = run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab_processes(tmp_path) == []
    assert not list(tmp_path.glob("*.qcow2")) and not (tmp_path / "state.json").exists()
    assert run("status").returncode == 1
