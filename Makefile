# The two commands of the README, and their parts. Everything installs what it needs:
# a virtualenv in .venv with the package (editable, strict so mypy sees the tree) and the
# Debian `prometheus` package when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test install prometheus lint typecheck unit crds bench clean

demo: install prometheus
	$(BIN)/homeostat demo $(DEMO_ARGS)

test: install prometheus lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

$(BIN)/python:
	# -I: the standard library's `venv` must not see our `operator/` folder (cwd) as `operator`.
	$(PYTHON) -I -m venv $(VENV)

# `$(BIN)/pip`, not `python -m pip`: `-m` puts the current folder first on sys.path, where
# our `operator/` folder would shadow the standard library's `operator` module.
install: $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]' --config-settings editable_mode=strict

prometheus:
	@command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || { \
	  echo "installing the Debian prometheus package"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends prometheus; }

lint:
	$(BIN)/ruff check .

typecheck:
	$(BIN)/mypy -p homeostat

crds: install
	$(BIN)/homeostat crds --out crds
	cp crds/*.yaml deploy/crds/

bench: install prometheus
	cd bench && ../$(BIN)/python detectors.py

clean:
	rm -rf $(VENV) build *.egg-info
