# mailagent — `make demo` (the main job on the local lab) and `make test` (what CI runs).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := $(shell grep -v '^\s*\#' apt-packages.txt | xargs)
# Installed without recommends: libvirt's and vagrant's would pull in NFS, libguestfs and a kernel.
APT_MINIMAL := $(shell grep -v '^\s*\#' apt-packages-minimal.txt | xargs)
PYTEST_ARGS ?=
# The lab's Debian release for demo, demo-hub and lab-up: 13 (trixie, default) or 12 (bookworm).
DEBIAN ?=
LAB_ENV := $(if $(DEBIAN),MAILAGENT_LAB_DEBIAN=$(DEBIAN))

.PHONY: deps venv test test-fast test-lab demo demo-hub lab-up lab-down bench clean

# Debian packages, installed once (root on Debian 12). Postfix is preseeded so it never prompts.
define apt_install
	@missing=$$(dpkg-query -W -f='$${Package} $${Status}\n' $(1) 2>/dev/null \
	    | awk '$$NF != "installed" {print $$1}'; \
	    for p in $(1); do dpkg-query -W $$p >/dev/null 2>&1 || echo $$p; done); \
	missing=$$(echo $$missing | tr ' ' '\n' | sort -u | xargs); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages: $$missing"; \
	    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_PACKAGES),)
	$(call apt_install,$(APT_MINIMAL),--no-install-recommends)
	@# The tests run promtool and their own Alertmanager on loopback: the packages' services
	@# (Prometheus on :9090, Alertmanager on :9093, on every address) stay stopped and disabled.
	@for s in prometheus prometheus-alertmanager; do \
	    systemctl disable --now $$s >/dev/null 2>&1 || service $$s stop >/dev/null 2>&1 || true; \
	done
	@# tests/control/dnscheck start their own nsd on 127.0.0.1 (a free port, config under tmp): the
	@# package's service, which would answer on port 53 of every address, stays stopped and disabled.
	@systemctl disable --now nsd >/dev/null 2>&1 || { update-rc.d nsd disable >/dev/null 2>&1; \
	    service nsd stop >/dev/null 2>&1; } || true

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/activate
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[deploy,agent,collector,lab,test]'

test: deps venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m 'not lab' $(PYTEST_ARGS)

test-lab: deps venv
	$(BIN)/python -m pytest -m lab $(PYTEST_ARGS)

# `make demo DEBIAN=12` runs the same on Debian 12 VMs.
demo: deps venv
	$(LAB_ENV) $(BIN)/python -m mailagent.lab.demo

# The hub topology: relays submit to a hub VM, which relays to the sink.
demo-hub: deps venv
	$(LAB_ENV) MAILAGENT_DEMO_HUB=1 $(BIN)/python -m mailagent.lab.demo

lab-up: deps venv
	$(BIN)/mailagent lab up $(if $(DEBIAN),--debian $(DEBIAN))

lab-down: venv
	$(BIN)/mailagent lab down

bench: deps venv
	$(BIN)/python bench/deploy.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info
