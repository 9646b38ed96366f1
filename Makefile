# The project's commands. Each bootstraps the virtualenv on first use (scripts/install.sh).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CACHE := .cache
TINY := $(CACHE)/standins-tiny
BASE := $(CACHE)/standins-base
# The stand-in builder's package folder (run as python -m with dots for slashes).
STANDINS := solution/standins
# The image make image builds here: the CPU variant of solution/Dockerfile, tagged like the chart.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE ?= localhost/tweet-classifier:$(VERSION)-cpu
PORT ?= 8000
BENCH_ARGS ?=

HELM_VENV := .venv-helm

.PHONY: install demo run test lint format proto stress bench bench-full clean helm-venv render-chart test-deploy image image-test

# The stamp is rebuilt when the pins change.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml scripts/install.sh
	scripts/install.sh --dev $(VENV)
	touch $@

install: $(VENV)/.installed

$(TINY)/.built: $(VENV)/.installed $(STANDINS)/*.py
	$(PY) -m $(subst /,.,$(STANDINS)) --size tiny $(TINY)
	touch $@

$(BASE)/.built: $(VENV)/.installed $(STANDINS)/*.py
	$(PY) -m $(subst /,.,$(STANDINS)) --size base $(BASE)
	touch $@

## demo: serve the offline stand-in models on port 8000 (HTTP) and 50051 (gRPC)
demo: $(TINY)/.built
	CLS_MODELS_DIR=$(TINY) HF_HUB_OFFLINE=1 $(PY) -m solution.server --http-port $(PORT)

## run: serve the configured real models (downloaded on first use, or from CLS_MODELS_DIR)
run: $(VENV)/.installed
	$(PY) -m solution.server --http-port $(PORT)

# The benchmark tools (uvicorn, matplotlib) on top of the dev pins.
$(VENV)/.bench-installed: requirements-bench.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	touch $@

## bench: the short benchmark (~10 min on 2 cores): results/, plots and the README table
bench: $(VENV)/.bench-installed $(BASE)/.built
	$(PY) -m solution.benchmarks bench --plan short --models-dir $(BASE) $(BENCH_ARGS)

## bench-full: the headline benchmark (about an hour on 2 cores)
bench-full: $(VENV)/.bench-installed $(BASE)/.built
	$(PY) -m solution.benchmarks bench --plan full --models-dir $(BASE) $(BENCH_ARGS)

## test: lint, type-check and the whole test suite on the tiny stand-ins
test: $(VENV)/.installed $(TINY)/.built helm-venv
	$(VENV)/bin/ruff check solution tests autotests scripts
	$(VENV)/bin/ruff format --check solution tests autotests scripts
	$(VENV)/bin/mypy solution
	STANDINS_TINY=$(TINY) $(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check solution tests autotests scripts
	$(VENV)/bin/mypy solution

format: $(VENV)/.installed
	$(VENV)/bin/ruff check --fix solution tests autotests scripts
	$(VENV)/bin/ruff format solution tests autotests scripts

## stress: 100,000 hostile HTTP cases against a live server on the tiny stand-ins; prints a table
stress: $(VENV)/.installed $(TINY)/.built
	$(PY) -m tests.stress.run --cases 100000 --grpc-cases 10000 --concurrency 32 --standins $(TINY)

## helm-venv: the deploy-tools venv (helm-sdkpy needs Python 3.12); quiet when up to date
helm-venv:
	scripts/helm_venv.sh $(HELM_VENV)

## render-chart: print the chart's manifests; VALUES="solution/helm/envs/t4.yaml" adds values files
render-chart: helm-venv
	scripts/render_chart.sh $(VALUES)

## test-deploy: only the deployment checks (chart, Dockerfile)
test-deploy: $(VENV)/.installed helm-venv
	$(PY) -m pytest -q tests/deploy

## image: build the image here (podman, no registry; the CPU variant); prints size and build time
image:
	scripts/image.sh $(IMAGE)

## image-test: build the image, run it on the tiny stand-ins, autotests + gRPC, SIGTERM drain
image-test: $(VENV)/.installed $(TINY)/.built
	scripts/image.sh $(IMAGE)
	$(PY) -m scripts.image_test --image $(IMAGE) --standins $(TINY)

## proto: regenerate the committed gRPC stubs from solution/proto/**/*.proto (grpcio-tools)
proto: $(VENV)/.installed
	$(PY) -m solution.proto.generate

clean:
	rm -rf $(CACHE) .pytest_cache .mypy_cache .ruff_cache
