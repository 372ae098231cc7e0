"""`make demo`: the main job on the local lab, end to end, with a summary at the end.

Brings the lab up (two relay VMs on Debian 13, or MAILAGENT_LAB_DEBIAN=12 (`make demo DEBIAN=12`),
and the smarthost sink; a running lab of the same shape is reused, any other lab left behind
(stopped, half-started, an older recipe, another release) is taken down first), deploys the
whole site with pyinfra, sends a test mail from every host with its own sendmail, and shows that
each arrived over TLS with AUTH, then prints the collector's fleet summary from every host's agent.
Exits non-zero when any step fails.

`make demo-hub` (MAILAGENT_DEMO_HUB=1) shows the hub topology instead: a hub VM too, the relays
submitting to it with their own credentials, the hub relaying to the sink.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mailagent.collector import fleettext
from mailagent.lab import image, mail, paths, state as lab_state, vm

HOSTS = int(os.environ.get("MAILAGENT_DEMO_HOSTS", "2"))
HUB = os.environ.get("MAILAGENT_DEMO_HUB", "0") == "1"
DEBIAN = os.environ.get("MAILAGENT_LAB_DEBIAN") or None  # None: image.DEFAULT_DEBIAN


class DemoFailed(RuntimeError):
    pass


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def ensure_lab() -> dict:
    """The running lab when it is whole and of the demo's shape; otherwise a fresh one."""
    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)

    try:
        state = lab_state.load()
    except lab_state.LabNotRunning:
        state = None  # nothing, or a state vm.up cleans away itself
    if state and vm.healthy() and vm.matches(state, HOSTS, HUB, DEBIAN):
        print(f"reusing the running lab in {state['lab_dir']}")
        return state
    if state:
        say("the lab left running is not the demo's (stopped parts, another shape, release or "
            "recipe): taking it down")
        vm.clean(paths.lab_dir(), say)
    return vm.up(hosts=HOSTS, hub=HUB, debian=DEBIAN, progress=say)


def deploy(root: Path) -> None:
    command = [str(Path(sys.executable).with_name("pyinfra")), "-y", "inventories/lab.py", "deploy/site.py"]
    print("$ " + " ".join(command[1:]), flush=True)
    if subprocess.run(command, cwd=root).returncode != 0:
        raise DemoFailed("the deploy failed (see pyinfra's output above)")


def send_and_check(state: dict) -> list[dict]:
    relays = [h["name"] for h in state["hosts"] if h["group"] == "relays"]
    sent = {host: mail.send_mail(state, host, subject=f"mailagent demo from {host}") for host in relays}
    found = mail.wait_received(state, sent.values(), timeout=180)
    rows = []
    for host, message_id in sent.items():
        records = found[message_id]
        record = records[0] if records else {}
        rows.append({"host": host, "arrived": len(records), "port": record.get("port"),
                     "tls": record.get("tls_version") if record.get("tls") else None,
                     "auth": record.get("auth_user"), "mechanism": record.get("auth_mechanism")})
    return rows


def summary(rows: list[dict]) -> bool:
    print(f"{'host':<8} {'arrived':<8} {'port':<6} {'TLS':<9} {'AUTH user (mechanism)'}")
    ok = True
    for row in rows:
        good = row["arrived"] == 1 and row["tls"] and row["auth"]
        ok &= bool(good)
        print(f"{row['host']:<8} {row['arrived']:<8} {row['port'] or '-':<6} {row['tls'] or 'NO':<9} "
              f"{row['auth'] or 'NONE'} ({row['mechanism'] or '-'})  {'ok' if good else 'FAILED'}")
    return ok


def fleet(state: dict) -> bool:
    """Wait for a fresh report from every relay, then print the collector's fleet summary."""
    collector = state.get("collector")
    if not collector:
        print("no collector in this lab")
        return False
    relays = {h["name"] for h in state["hosts"]}
    deadline = time.monotonic() + 180
    while True:
        listing = httpx.get(collector["url"] + "/api/v1/hosts", verify=collector["ca_cert"],
                            timeout=10).json()
        seen = {h["host"] for h in listing["hosts"] if h.get("last_seen")}
        if relays <= seen or time.monotonic() > deadline:
            break
        time.sleep(3)
    print(fleettext.render(listing))
    print(f"dashboard: {collector['url']}/  (CA: {collector['ca_cert']})")
    missing = relays - seen
    if missing:
        print(f"no report from: {', '.join(sorted(missing))}")
    return not missing


def main() -> int:
    root = Path.cwd()
    if not (root / "deploy" / "site.py").exists():
        print("run `make demo` from the repository root", file=sys.stderr)
        return 2
    try:
        step(f"Lab: Debian {image.suite(DEBIAN).version} VMs under QEMU, and the TLS+AUTH smarthost sink")
        state = ensure_lab()
        step("Deploy the whole site with pyinfra (inventories/lab.py deploy/site.py)")
        deploy(root)
        step("Send a test mail from every host with sendmail, and look for it at the sink")
        ok = summary(send_and_check(state))
        if any(h["group"] == "hub" for h in state["hosts"]):
            print("route: relayN --(its own hub login, TLS)--> hub --(the hub's login, TLS)--> sink; "
                  "the AUTH user above is the hub's")
        step("Every host's agent reports to the collector (GET /api/v1/hosts)")
        ok = fleet(state) and ok
    except (DemoFailed, RuntimeError, OSError) as exc:
        print(f"\ndemo FAILED: {exc}", file=sys.stderr)
        ok = False
    print("\nThe lab is still running: `mailagent lab status`, `mailagent lab mail`, "
          "`mailagent lab ssh relay1 -- mailq`; stop it with `make lab-down`.")
    print("demo " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
