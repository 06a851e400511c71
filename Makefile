# `make run` serves the portal with a demo tenant; `make test` runs the whole test suite.
# Both install what they need first: a virtual environment in .venv, front-end packages from npm,
# and, for the browser tests, Debian's Chromium.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
EMULATOR_PORT ?= 8443

TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/licensepools
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install run test chromium emulator clean

install: $(INSTALLED)

$(INSTALLED): pyproject.toml package.json package-lock.json
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(INSTALLED)

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "Browser tests need Debian's Chromium: sudo apt-get install -y chromium"; \
		fi; \
	fi

# Links in the demo's e-mails point at the address it serves, unless PORTAL_BASE_URL says otherwise.
run: install
	PORTAL_BASE_URL=$${PORTAL_BASE_URL:-http://$(HOST):$(PORT)} $(PY) manage.py run_demo --host $(HOST) --port $(PORT) --emulator-port $(EMULATOR_PORT)

emulator: install
	$(PY) -m graphsync.emulator serve --demo --state-dir var/emulator --port $(EMULATOR_PORT)

test: install chromium
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} \
	CELERY_BROKER_URL=$${CELERY_BROKER_URL:-$(TEST_BROKER_URL)} \
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-test-only-secret-key} \
	DATABASE_CONN_MAX_AGE=0 \
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules var test-artifacts
