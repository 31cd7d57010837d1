# make dev  — run the whole platform locally on real parts (Ctrl-C stops everything)
# make test — run every test suite on real parts
# Both create .venv and install the pinned requirements themselves; only Python 3.11+ is needed (make test also
# takes promtool and prometheus from Debian's package with apt-get download, unless they are on PATH).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_TOOLS := $(VENV)/.test-tools
SERVICE_REQUIREMENTS := $(wildcard */requirements.txt)
DEPLOY_REQUIREMENTS  := $(wildcard requirements-deploy.txt)
PY_SOURCES := servicekit devstack user-service room-service reservation-service tests bench k8s

.PHONY: dev test bench lint fmt clean-state install help

help:
	@echo "make dev     run the platform locally: gateway http://localhost:8080, docs /docs/ (Ctrl-C stops it)"
	@echo "make test    run every test suite against real PostgreSQL, Kafka-protocol broker, NGINX and SMTP"
	@echo "make bench   the platform beside a bare Flask baseline under k6: req/s, p50/p99, ratios, drain times, memory, lists at 1M bookings"
	@echo "make lint    ruff check + format check"
	@echo "make fmt     ruff format + autofix"
	@echo "make clean-state  delete .devstack/ (local databases, keys, mail, logs)"

$(STAMP): requirements-dev.txt constraints.txt $(SERVICE_REQUIREMENTS) $(DEPLOY_REQUIREMENTS) servicekit/pyproject.toml devstack/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt \
		$(foreach r,$(SERVICE_REQUIREMENTS) $(DEPLOY_REQUIREMENTS),-r $(r)) -e servicekit -e devstack
	@touch $@

# Only the tests need these (promtool, prometheus: from Debian's package, see the script); `make dev` does not.
$(TEST_TOOLS): $(STAMP) tests/deploy/install-tools.sh
	PROMTOOL_DIR=$(VENV)/bin bash tests/deploy/install-tools.sh
	@touch $@

install: $(STAMP) $(TEST_TOOLS)

dev: $(STAMP)
	@$(PY) -m devstack up

test: $(TEST_TOOLS)
	@$(PY) -m devstack test

bench: $(STAMP)
	@$(PY) bench/platform_bench.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check $(wildcard $(PY_SOURCES))
	$(VENV)/bin/ruff format --check $(wildcard $(PY_SOURCES))

fmt: $(STAMP)
	$(VENV)/bin/ruff check --fix $(wildcard $(PY_SOURCES))
	$(VENV)/bin/ruff format $(wildcard $(PY_SOURCES))

clean-state:
	rm -rf .devstack
