# swapserve — every target CI and the README use. `make help` lists them.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8500
REST_PORT ?= 8501
MODEL  ?= seed
EXPORT_ROOT ?= models/seed
PROTO_FILES := $(shell find protos -name '*.proto')

.DEFAULT_GOAL := help
.PHONY: help setup protos serve retrain predict status test test-unit lint typecheck bench bench-setup soak clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml client/pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements.lock -e ./client -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the server, the client and dev tools (pinned)

# Generated stubs are checked in. The include mapping places the generated modules inside the
# swapserve_client package so their imports are absolute and correct without editing them.
protos: $(STAMP)  ## regenerate the Python stubs from protos/
	$(BIN)/python -m grpc_tools.protoc -Iswapserve_client/_proto=protos \
		--python_out=client --grpc_python_out=client --pyi_out=client $(PROTO_FILES)

$(EXPORT_ROOT):
	$(MAKE) setup
	$(BIN)/python examples/seed/train.py --export-root $(EXPORT_ROOT) --slope 2

serve: $(STAMP) $(EXPORT_ROOT)  ## train + export the demo model if absent, serve it on :8500 (gRPC), :8501 (HTTP)
	$(BIN)/swapserve --model-name $(MODEL) --export-root $(EXPORT_ROOT) --port $(PORT) \
		--rest-port $(REST_PORT)

retrain: $(STAMP)  ## export a new demo version trained on y = 3x (the server hot-swaps to it)
	$(BIN)/python examples/seed/train.py --export-root $(EXPORT_ROOT) --slope 3

predict: $(STAMP)  ## one client call against the running server
	$(BIN)/swapserve-client --target localhost:$(PORT) predict $(MODEL) --input 'number=[[100.0]]'

status: $(STAMP)  ## the versions of the demo model and their states
	$(BIN)/swapserve-client --target localhost:$(PORT) status $(MODEL)

test: $(STAMP)  ## the whole test suite: unit tests (seconds, no TensorFlow), then end-to-end
	$(BIN)/python -m pytest tests/unit
	$(BIN)/python -m pytest tests/e2e

test-unit: $(STAMP)  ## only the unit tests (no TensorFlow, no server)
	$(BIN)/python -m pytest tests/unit

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy

# The Kubernetes version the manifests in deploy/ are validated against.
K8S_VERSION ?= 1.33.0

lint: $(STAMP)  ## ruff, mypy, yamllint + kubernetes-validate of deploy/, the Grafana dashboard, stubs match protos/
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/yamllint -s deploy/ .yamllint
	$(BIN)/kubernetes-validate --strict --quiet -k $(K8S_VERSION) deploy/kubernetes/*.yaml
	$(BIN)/python deploy/grafana/check_dashboard.py deploy/grafana/swapserve.json
	$(MAKE) protos
	git diff --exit-code -- client/swapserve_client/_proto || \
		(echo "generated stubs drifted from protos/: run 'make protos' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- client/swapserve_client/_proto)" || \
		(echo "untracked generated files: run 'make protos' and commit" && exit 1)

clean:  ## remove the virtualenv and caches (keeps models/)
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

soak: $(STAMP)  ## 100 hot swaps under load on every protocol, then SIGTERM under load (minutes)
	$(BIN)/python bench/soak.py

# Side virtualenvs for the benchmark's baseline and peer (their pins differ from ours).
.venv-%/.installed: bench/requirements-%.txt
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --disable-pip-version-check pip==25.3
	.venv-$*/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

bench-setup: $(STAMP) .venv-estimator/.installed .venv-mlserver/.installed .venv-httpstack/.installed  ## side virtualenvs: estimator baseline, MLServer, HTTP stacks

bench: bench-setup  ## every benchmark scenario -> docs/benchmarks/ (about 10 minutes)
	$(BIN)/python bench/suite.py
	$(BIN)/python bench/update_docs.py
