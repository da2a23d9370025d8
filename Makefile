# Two commands do everything on a fresh machine (see README): `make run` and `make test`.
# Set-up: a virtual environment in .venv, the CPU build of torch 2.13.0 first (an unpinned torch would pull
# gigabytes of CUDA packages), then this project with its dev extra.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup run test test-fast docs lint bench clean nnunet-env dvc-deps docker-check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# The main job: the DVC pipeline preprocess -> train -> infer -> analyze on params.yaml; with data.root null
# it runs on the embedded synthetic dataset. The venv's bin goes first on PATH so stage commands use its python.
run: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@echo ""
	@echo "Results"
	@echo "  metrics:      metrics/train.json, metrics/infer.json, metrics/analysis.json  (.venv/bin/dvc metrics show)"
	@echo "  curves:       metrics/train_curves.png"
	@echo "  model:        models/latest  (seg infer --model models/latest --input <folder> --output <folder>)"
	@echo "  predictions:  outputs/predictions  (label maps, predictions.json, metrics.csv)"
	@echo "  analysis:     outputs/analysis/report.html  (gate maps, CAMs, SEAM; open in a browser)"
	@echo "  MLflow:       .venv/bin/mlflow ui --backend-store-uri sqlite:///$(abspath .)/mlflow.db  then http://127.0.0.1:5000"

# Everything: fast unit tests and slow integration tests (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

# The edit loop: unit tests only, under 5 minutes.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The documentation site (mkdocs.yml, docs/) into site/, strict: a broken link, a page missing from the nav or an
# API name that no longer imports fails. Its tools are the docs extra, installed on top of the set-up.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python -m seg.config_docs --check docs/configuration.md
	$(BIN)/mkdocs build --strict --site-dir site

# nnU-Net v2 for benchmarks/vs_nnunet.py, in its own environment (not part of setup or CI): its dependency timm pulls
# PyPI's torchvision, which fails to import beside the CPU torch ("operator torchvision::nms does not exist") and
# with it monai.networks.nets; nnU-Net's own train and predict paths never import torchvision, so it runs there.
nnunet-env:
	test -x .venv-nnunet/bin/python || $(PYTHON) -m venv .venv-nnunet
	.venv-nnunet/bin/pip install -q torch==2.13.0
	.venv-nnunet/bin/pip install -q nnunetv2==2.8.1 torch==2.13.0

# The linter and the formatter (ruff, the rule set in pyproject.toml): CI runs it, .pre-commit-config.yaml too.
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# dvc.yaml's code deps from the import graph (after adding, moving or importing a module; a fast test checks them)
dvc-deps: setup
	$(BIN)/python tools/dvc_deps.py --write

# The CPU image built and run where no container registry is reachable (Debian, as root; podman, mmdebstrap,
# runc): a base image from Debian packages, docker/Dockerfile.cpu on it with the CPU torch wheel, then seg --help
# and the embedded pipeline inside the image. Not part of CI (it takes long). DOCKER_CHECK_PIPELINE=0 stops before
# the pipeline; tools/docker_check.sh lists the other settings.
docker-check:
	bash tools/docker_check.sh

bench: setup
	$(BIN)/python benchmarks/models.py

clean:
	rm -rf $(VENV) .venv-nnunet .pytest_cache site
