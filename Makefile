# Two commands do all the set-up on a fresh machine (see README.md):
#   make serve   install, then run `glassbox serve` on ./models with the embedded defaults
#   make test    install (with test dependencies), then run the whole test suite
#
#   make serve ARGS="--model-repository-poll-seconds 5"   flags for `glassbox serve`
#   make serve TORCH=cpu                                   torch from the PyTorch CPU wheel index (no CUDA
#                                                          libraries: ~1 GB instead of ~6 GB on Linux x86_64)
#
# Installing is skipped while pyproject.toml (and the client's) are older than the stamp it leaves in the
# virtual environment; the code itself is installed editable, so code changes need no reinstall.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
ARGS ?=
TORCH ?=
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
PIP_FLAGS := $(if $(filter cpu,$(TORCH)),--extra-index-url $(TORCH_CPU_INDEX))
PROJECT_FILES := pyproject.toml clients/python/pyproject.toml
INSTALLED := $(VENV)/.installed
INSTALLED_TEST := $(VENV)/.installed-test
NODE_MODULES := clients/typescript/node_modules/.package-lock.json

.PHONY: install install-test serve test lint typecheck protos check-protos buf

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(INSTALLED): $(PROJECT_FILES) | $(PY)
	@echo "Installing Glassbox into $(VENV) (torch and its libraries are large: several minutes the first time)"
	$(PIP) install $(PIP_FLAGS) -e clients/python -e .
	touch $@

$(INSTALLED_TEST): $(PROJECT_FILES) | $(PY)
	@echo "Installing Glassbox and its test dependencies into $(VENV) (several minutes the first time)"
	$(PIP) install $(PIP_FLAGS) -e 'clients/python[plot]' -e '.[test]'
	# Zennit 1.0.0 (the LRP reference in tests) declares Python >= 3.11.11 but is pure Python and runs on
	# any 3.11; its dependencies (torch, torchvision, numpy, pillow, click) are installed above.
	$(PIP) install --no-deps --ignore-requires-python zennit==1.0.0
	touch $@ $(INSTALLED)

$(NODE_MODULES): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(INSTALLED)

install-test: $(INSTALLED_TEST) $(NODE_MODULES)
	./scripts/ensure-redis.sh
	./scripts/ensure-java-protoc.sh
	./scripts/ensure-chromium.sh

serve: install
	$(VENV)/bin/glassbox serve --http-address 127.0.0.1:8080 $(ARGS)

protos: install-test
	$(PY) scripts/gen_protos.py

check-protos: install-test
	$(PY) scripts/gen_protos.py --check

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-test
	$(VENV)/bin/mypy

buf: install-test
	$(PY) scripts/check_protos_buf.py

test: install-test check-protos lint typecheck buf
	$(PY) -m pytest -q
