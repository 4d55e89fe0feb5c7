# Two commands: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/monitor.toml

.PHONY: run test lint check clean bench-match

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

## bench-match: items/s of the matcher at 10, 1,000 and 10,000 rules (docs/performance.md)
bench-match: $(VENV)/.installed-dev
	$(BIN)/python -m bench.matcher

## lint: ruff and strict mypy on the package
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check monitor tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
