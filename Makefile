# The two commands a newcomer needs: `make run` and `make test`.
# Both set up what they need first (Debian packages, the .venv); setup is idempotent and quick
# when nothing changed.

# The .venv's interpreter: Debian's own python3 when there is one. Debian builds it with
# profile-guided optimisation and LTO, linked statically; a plain source build (pyenv's, first
# on PATH on our machines) runs the same pure-Python code 20-30 % slower, and a call's media
# path is mostly pure Python (docs/architecture.md). Another one: make PYTHON=/path/to/python3
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the project uses at run time or in its tests.
DEB_PACKAGES := libopus0 libportaudio2 libspeexdsp1 sqlite3 tmux pulseaudio libasound2-plugins \
	espeak-ng sox opus-tools python3-venv python3-dev gcc redis-server valgrind

.PHONY: run test setup system-deps lint bench fuzz clean

run: setup
	$(BIN)/messenger-tui

# Line coverage of messenger_tui is measured on the way (pytest-cov) and printed as one line
# at the end; `.venv/bin/coverage report` lists it per file afterwards. The tests run on
# TEST_WORKERS processes (pytest-xdist): most of the suite waits on real processes, so the
# waits overlap even on 2 cores (tests/conftest.py says which tests share a worker).
# PYTHONDONTWRITEBYTECODE is cleared for the run: where the environment sets it (as on our build
# machines), every worker and every relay or client process the tests start compiled the whole
# package again (about 0.15 s of CPU a process, 5 s of collection a worker).
TEST_WORKERS ?= 4
test: setup lint
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadgroup \
		--durations=15 --cov --cov-report=
	@echo "line coverage of messenger_tui: $$($(BIN)/coverage report --format=total) %"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python -m benchmarks.run

# A soak of 1,000,000 malformed frames against a real relay process (docs/performance.md).
fuzz: setup
	$(BIN)/python -m benchmarks.frame_soak

setup: system-deps $(STAMP)

system-deps:
	@bash .ci/system-deps.sh $(DEB_PACKAGES)

# Rebuilt from scratch when the dependencies or this file (the interpreter) change.
$(STAMP): pyproject.toml Makefile | system-deps
	$(PYTHON) -m venv --clear $(VENV)
	@# pip runs at -qq (errors only): a machine-wide pip configuration that names local index
	@# folders without every package (as on our build machines) makes pip print one "Location
	@# ... is ignored" warning per package, noise on a newcomer's first `make run`; a failed
	@# install still prints its error and stops make. setuptools (84) also prints an advisory
	@# on every editable install ("Editable installation": a folder named like the package may
	@# shadow it); ours is that package.
	$(BIN)/python -m pip install -qq --upgrade pip
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip install -qq -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) build *.egg-info
