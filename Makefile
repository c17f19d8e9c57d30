# The two commands a new user runs: `make demo` and `make test`. Everything else is a step of theirs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install test lint demo bench bench-ingest chaos chaos-ha services tools browser image sbom clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Starts the local services the tests talk to when they are not answering (never a skip: a missing one fails).
services:
	@SERVICES="redis rabbitmq nats postgres" scripts/ensure-services

# Installs the tools the benchmarks drive (wrk) when they are missing, with apt-get.
tools:
	@TOOLS="wrk" scripts/ensure-tools

# The browser the console's tests drive (Debian's chromium; Playwright is told its path, it downloads none).
browser:
	@TOOLS="chromium" scripts/ensure-tools

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install services browser lint
	$(BIN)/pytest

bench-ingest: install services tools
	$(BIN)/python -m bench.ingest

bench: install services tools
	$(BIN)/python -m bench

# Faults on loopback, at most 5 minutes: workers killed, Redis restarted and killed; prints a table (docs/chaos.md).
chaos: install services
	$(BIN)/python -m chaos

# Twelve hosts as network namespaces (root), under 10 minutes: primary, Sentinel, worker and receiver hosts fail; a table.
chaos-ha: install
	$(BIN)/python -m chaos.ha

demo: install services
	$(BIN)/python -m demo $(DEMO_ARGS)

# The container image, wavix-events:VERSION: docker build when a daemon answers, else buildah on a Debian base
# (both installed with apt-get when missing; BASE_IMAGE=... to choose the base). Prints its size and layers.
image:
	@scripts/build-image

# A CycloneDX SBOM of the image's Python packages, in dist/ (docs/deploy.md: how to scan it).
sbom: install image
	@scripts/sbom

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
