# The two commands a new user runs: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench bench-ingest services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Starts the local services the tests talk to when they are not answering (never a skip: a missing one fails).
services:
	@SERVICES="redis rabbitmq nats" scripts/ensure-services

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install services lint
	$(BIN)/pytest

bench-ingest: install services
	$(BIN)/python -m bench.ingest

bench: install services
	$(BIN)/python -m bench

demo: install services
	$(BIN)/python -m demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
