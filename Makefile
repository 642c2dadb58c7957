# Concord: the two commands a new machine needs are `make install` then `make run` (or `make test`).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
ORG     ?= acme
ROLES   ?= alliance_manager
SUB     ?= dev-user

.PHONY: install run test lint format typecheck bench token rebuild k8s-check clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

run: install
	$(BIN)/concord run

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m bench

token: install
	@$(BIN)/concord token --org $(ORG) --roles $(ROLES) --sub $(SUB)

k8s-check: install
	$(BIN)/python -m concord.cli k8s-check deploy/k8s

clean:
	rm -rf .concord build *.egg-info
