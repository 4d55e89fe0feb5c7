# Two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/monitor.toml

.PHONY: run test lint bench-fetch clean

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

## run: fresh machine -> migrated SQLite database, example config imported, daemon in the foreground
run: $(VENV)/.installed
	$(BIN)/monitor --config $(CONFIG) migrate
	$(BIN)/monitor --config $(CONFIG) run

## test: fresh machine -> the whole suite, then ruff and strict mypy
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

## lint: ruff and strict mypy on the package
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@ $(VENV)/.installed $(VENV)/.installed-dev

## bench-fetch: poll cycles of 1,000 and 10,000 local feeds, monitor against reader
bench-fetch: $(VENV)/.installed-bench
	$(BIN)/python -m bench.fetch_cycle $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
