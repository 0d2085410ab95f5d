# dockyard — build, share, run.  `make run` sets up and runs the example; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV := .venv
BIN := $(VENV)/bin
SOCK ?= /run/dockyard/dockyard.sock
APT_PACKAGES := busybox-static runc tini python3-venv iproute2 ca-certificates procps nftables
# only the tests need these: the CNCF distribution registry and skopeo, run on loopback by the
# tests, the Python docker-compose (1.29) that drives dockyardd in tests/compat, and zsh (the
# completion script is run in it)
TEST_APT_PACKAGES := docker-registry skopeo docker-compose zsh

.PHONY: install install-service test-deps run test lint bench daemon stop-daemon clean

$(BIN)/dockyardd: pyproject.toml
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m compileall -q src >/dev/null
	@touch $@

install: $(BIN)/dockyardd

# dockyard.service + dockyard.socket (socket activation, Type=notify, Delegate=yes, KillMode=process)
# for this checkout's .venv; enabled and started when systemd runs. The socket's group is made if
# missing (its members get root-equivalent access, as with Docker's "docker" group).
SYSTEMD_DIR ?= /etc/systemd/system
SOCKET_GROUP ?= dockyard
SYSTEMCTL ?= systemctl
install-service: install
	@getent group $(SOCKET_GROUP) >/dev/null || groupadd --system $(SOCKET_GROUP)
	@mkdir -p $(SYSTEMD_DIR)
	@for unit in dockyard.service dockyard.socket; do \
		sed -e 's|@PREFIX@|$(CURDIR)|g' -e 's|@GROUP@|$(SOCKET_GROUP)|g' contrib/systemd/$$unit > $(SYSTEMD_DIR)/$$unit; \
		echo "installed $(SYSTEMD_DIR)/$$unit"; done
	@if [ -d /run/systemd/system ]; then \
		$(SYSTEMCTL) daemon-reload && $(SYSTEMCTL) enable --now dockyard.socket dockyard.service; \
	else echo "systemd is not running here: start the daemon with $(BIN)/dockyardd --detach (or in the foreground)"; fi

# Debian starts a docker-registry service on :5000 when it is installed; the tests run their own.
test-deps:
	@if ! dpkg -s $(TEST_APT_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_APT_PACKAGES); \
		systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi

# Start the daemon in the background unless one already answers on $(SOCK).
daemon: install
	@if ! $(BIN)/dockyard -H unix://$(SOCK) version >/dev/null 2>&1; then \
		mkdir -p /var/log; \
		nohup $(BIN)/dockyardd -H unix://$(SOCK) >>/var/log/dockyardd.log 2>&1 & \
		for i in $$(seq 1 100); do $(BIN)/dockyard -H unix://$(SOCK) version >/dev/null 2>&1 && break; sleep 0.1; done; \
		$(BIN)/dockyard -H unix://$(SOCK) version >/dev/null || { tail -20 /var/log/dockyardd.log; exit 1; }; \
	fi

stop-daemon:
	-@[ -f /run/dockyard/dockyardd.pid ] && kill $$(cat /run/dockyard/dockyardd.pid) || true
	-@pkill -f "dockyard registry [s]erve --addr $(REGISTRY_ADDR)" || true

# The main job on built-in defaults: a base image from Debian's busybox, build the bundled example,
# push it to a dockyard registry on loopback, remove it locally, pull it back, run it.
REGISTRY_ADDR ?= 127.0.0.1:5380
REGISTRY_ROOT ?= /var/lib/dockyard-registry
EXAMPLE := $(REGISTRY_ADDR)/examples/hello:latest
REGISTRY_UP = $(BIN)/python -c "import urllib.request as u; u.urlopen('http://$(REGISTRY_ADDR)/v2/', timeout=1)"
run: daemon
	@if ! $(REGISTRY_UP) >/dev/null 2>&1; then \
		nohup $(BIN)/dockyard registry serve --addr $(REGISTRY_ADDR) --root $(REGISTRY_ROOT) \
			>>/var/log/dockyard-registry.log 2>&1 & \
		for i in $$(seq 1 100); do $(REGISTRY_UP) >/dev/null 2>&1 && break; sleep 0.1; done; fi
	$(BIN)/dockyard bootstrap busybox
	$(BIN)/dockyard build --progress=plain -t $(EXAMPLE) examples/hello
	$(BIN)/dockyard push $(EXAMPLE)
	$(BIN)/dockyard rmi $(EXAMPLE)
	$(BIN)/dockyard pull $(EXAMPLE)
	$(BIN)/dockyard run --rm --name dockyard-hello-$$$$ $(EXAMPLE) ./serve.sh once

test: install test-deps
	@$(BIN)/python -m compileall -q src >/dev/null
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Every case of issue 9 side by side with Docker and Podman when installed (it installs neither):
# bench/results/summary.md + summary.png. BENCH_FLAGS=--quick checks the harness in ~3 minutes.
bench: install
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python bench/bench_all.py $(BENCH_FLAGS)

clean:
	rm -rf $(VENV) build *.egg-info
