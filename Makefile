# Two commands do all the set-up on a fresh machine (see README.md):
#   make serve   install, then run `glassbox serve` on ./models with the embedded defaults
#   make test    install (with test dependencies), then run the whole test suite
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install install-test serve test lint protos check-protos

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e clients/python -e .

install-test: $(PY)
	$(PIP) install --quiet -e 'clients/python[plot]' -e '.[test]'
	./scripts/ensure-redis.sh
	./scripts/ensure-chromium.sh
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error

serve: install
	$(VENV)/bin/glassbox serve --http-address 127.0.0.1:8080

protos: install-test
	$(PY) scripts/gen_protos.py

check-protos: install-test
	$(PY) scripts/gen_protos.py --check

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: install-test check-protos lint
	$(PY) -m pytest -q
