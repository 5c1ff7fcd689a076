# The two commands a newcomer needs: `make run` and `make test`.
# Both set up what they need first (Debian packages, the .venv); setup is idempotent and quick
# when nothing changed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the project uses at run time or in its tests.
DEB_PACKAGES := libopus0 libportaudio2 sqlite3 tmux pulseaudio libasound2-plugins espeak-ng sox

.PHONY: run test setup system-deps lint bench clean

run: setup
	$(BIN)/messenger-tui

test: setup lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m benchmarks.run

setup: system-deps $(STAMP)

system-deps:
	@bash .ci/system-deps.sh $(DEB_PACKAGES)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
