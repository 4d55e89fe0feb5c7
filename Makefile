# Two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/monitor.toml

.PHONY: run test lint bench-fetch bench-match bench-cold bench-scale clean systemd-analyze chromium bytecode

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Installed package, stamped on pyproject.toml so a change to dependencies reinstalls.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

# pip compiles the bytecode of what it installs, but not of an editable install: where
# PYTHONDONTWRITEBYTECODE is set, every process (the daemon, each parse-worker template)
# would compile monitor's sources again at import (a third of a template's start). The
# daemon, the tests and the benchmarks depend on it; only what changed is compiled.
bytecode: | $(BIN)/python
	$(BIN)/python -m compileall -q monitor

## run: fresh machine -> migrated SQLite database, example config imported, daemon in the foreground
run: $(VENV)/.installed bytecode
	$(BIN)/monitor --config $(CONFIG) migrate
	$(BIN)/monitor --config $(CONFIG) run

## test: fresh machine -> the whole suite, then ruff and strict mypy
test: $(VENV)/.installed-dev systemd-analyze chromium bytecode
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

# $(call apt_install,CHECK,PACKAGE,TESTS): when the shell test CHECK fails, install
# Debian's PACKAGE with apt-get where possible (root, apt, network); otherwise TESTS are
# skipped with the reason.
define apt_install
	@$(1) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's $(2) for $(3)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(2) >/dev/null \
	      || echo "warning: could not install $(2); $(3) will be skipped"; \
	  else \
	    echo "warning: $(2) is missing and cannot be installed here; $(3) will be skipped"; \
	  fi; }
endef

# tests/test_deploy.py checks deploy/monitor.service with systemd-analyze (Debian's
# systemd package).
systemd-analyze:
	$(call apt_install,command -v systemd-analyze >/dev/null 2>&1,systemd,the unit-file tests)

# tests/test_browser.py drives Debian's Chromium through Playwright (no browser download).
chromium:
	$(call apt_install,test -x /usr/bin/chromium,chromium,the browser tests)

## bench-match: items/s of the matcher at 10, 1,000 and 10,000 rules (docs/performance.md)
bench-match: $(VENV)/.installed-dev bytecode
	$(BIN)/python -m bench.matcher

## bench-cold: CPU per feed of each stage of a cold poll (parse, hand-off, match, store), no HTTP
bench-cold: $(VENV)/.installed-dev bytecode
	$(BIN)/python -m bench.cold_stages $(BENCH_ARGS)

## lint: ruff and strict mypy on the package
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

## bench-fetch: poll cycles of 1,000 and 10,000 local feeds, monitor against reader
bench-fetch: $(VENV)/.installed-bench bytecode
	$(BIN)/python -m bench.fetch_cycle $(BENCH_ARGS)

## bench-scale: poll cycles with 1, 2 and 4 workers sharing one PostgreSQL (MONITOR_TEST_PG_URL)
bench-scale: $(VENV)/.installed-dev bytecode
	$(BIN)/python -m bench.scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
