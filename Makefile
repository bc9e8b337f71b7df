# Yakuba: two commands do all the set-up.  `make run` serves the demo ward;
# `make test` runs the whole suite.  Every target installs what it needs.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Debian packages the project needs: Chromium for the browser tests, LDAP headers
# for python-ldap, CJK fonts for Japanese pages, espeak-ng to speak the English test
# recordings of the minutes tests and the ASR benchmark.
APT_PACKAGES := chromium libldap2-dev libsasl2-dev fonts-noto-cjk gettext espeak-ng

.PHONY: run test install system-deps frontend migrate demo lint check \
        test-sqlite test-postgresql bench-audit bench-rooms bench-asr clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: requirements.lock pyproject.toml | $(BIN)/python
	$(MAKE) system-deps
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed frontend messages

messages: $(VENV)/.installed
	cd yakuba && ../$(BIN)/django-admin compilemessages --ignore=.venv >/dev/null

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# TypeScript and the vendored npm assets (htmx, axe-core for tests) go into the static tree.
frontend: frontend/node_modules/.installed
	cd frontend && npm run --silent build

migrate: install
	$(BIN)/yakuba migrate

demo: migrate
	$(BIN)/yakuba demo

# The demo machine has no mail relay: mail stays in the outbox unless you say otherwise.
run: demo
	YAKUBA_MAIL_ENABLED=$${YAKUBA_MAIL_ENABLED:-false} $(BIN)/yakuba serve --host $(HOST) --port $(PORT)

lint: install
	scripts/lint

# mypy (strict) and the check that migrations are complete.
check: install
	scripts/check

test-sqlite: install
	DATABASE_URL= $(BIN)/pytest $(PYTEST_ARGS)

# The same suite again on PostgreSQL (skipped with a message when none is reachable,
# failed when YAKUBA_TEST_SERVICES=required).
test-postgresql: install
	scripts/test-postgresql $(PYTEST_ARGS)

test: install lint check test-sqlite test-postgresql

bench-audit: install
	$(BIN)/python bench/audit.py

bench-rooms: install
	$(BIN)/python bench/rooms.py $(BENCH_ROOMS_ARGS)

# Accuracy and speed of every usable speech-recognition engine over the shipped English
# set (spoken by espeak-ng); BENCH_ASR_ARGS="--dataset DIR" for a set of your own.
bench-asr: install
	$(BIN)/python bench/asr.py $(BENCH_ASR_ARGS)

# Chat: real WebSocket clients against Yakuba and the same load against Matrix Synapse
# (pinned in bench/requirements-synapse.txt, its own venv bench/.venv-synapse, built once;
# psycopg2 compiles against libpq-dev).  BENCH_CHAT_ARGS="--quick" for a smoke run.
SYNAPSE_VENV := bench/.venv-synapse
.PHONY: bench-chat
$(SYNAPSE_VENV)/.installed: bench/requirements-synapse.txt
	@dpkg -s libpq-dev >/dev/null 2>&1 && command -v gcc >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q libpq-dev gcc; }
	test -x $(SYNAPSE_VENV)/bin/python || $(PYTHON) -m venv $(SYNAPSE_VENV)
	$(SYNAPSE_VENV)/bin/pip install -q -r bench/requirements-synapse.txt
	touch $@

bench-chat: install $(SYNAPSE_VENV)/.installed
	$(BIN)/python bench/chat.py $(BENCH_CHAT_ARGS)

clean:
	rm -rf $(VENV) frontend/node_modules var/test-*
