# Concord. On a fresh machine: `make install`, then `make run` (everything) or `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ORG     ?= acme
ROLES   ?= alliance_manager
SUB     ?= dev-user

.PHONY: install run test lint format bench token rebuild migrate k8s-check k8s-dev-secrets clean

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstalls only when pyproject.toml changes, so `make token` and friends stay quiet.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/concord run

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench

token: $(STAMP)
	@$(BIN)/concord token --org $(ORG) --roles $(ROLES) --sub $(SUB)

# make rebuild SERVICE=scorecard PROJECTION=scorecard_board [WAIT=seconds]
rebuild: $(STAMP)
	$(BIN)/concord rebuild $(SERVICE) $(PROJECTION) $(if $(WAIT),--wait $(WAIT))

# make migrate [SERVICE=scorecard]: every service's schema (or one) to head
migrate: $(STAMP)
	$(BIN)/concord migrate $(SERVICE)

# The dev overlay's Secret is generated from this git-ignored file, made once per clone.
DEV_SECRETS := deploy/k8s/overlays/dev/secrets.env

$(DEV_SECRETS): | $(STAMP)
	$(BIN)/concord manifests --dev-secrets deploy/k8s

k8s-dev-secrets: $(DEV_SECRETS)

# The manifests are what the service declarations render (`concord manifests` writes them),
# then they pass the checker.
k8s-check: $(STAMP) $(DEV_SECRETS)
	$(BIN)/concord manifests --check deploy/k8s
	$(BIN)/python -m concord.k8s_check deploy/k8s

clean:
	rm -rf .concord build *.egg-info $(STAMP)
