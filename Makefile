# ematix developer commands. The two set-up commands on a fresh machine are `make dev` and
# `make test`; both create .venv and install the project first (only python3 is needed).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Stamp file: (re)install whenever pyproject.toml changes.
INSTALLED := $(VENV)/.installed

HOST ?= 127.0.0.1
PORT ?= 3000
DAGSTER_HOME_DIR := $(CURDIR)/.dagster_home
DATA_DIR := $(CURDIR)/.data

.PHONY: help venv dev test lint format clean distclean

help: ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

venv: $(INSTALLED) ## Create .venv and install the project with its dev extra.

$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

dev: $(INSTALLED) ## Run the example project under `dg dev` on http://127.0.0.1:3000.
	@mkdir -p $(DAGSTER_HOME_DIR) $(DATA_DIR)
	@test -f $(DAGSTER_HOME_DIR)/dagster.yaml || \
		cp example_project/dagster.yaml $(DAGSTER_HOME_DIR)/dagster.yaml
	VIRTUAL_ENV=$(CURDIR)/$(VENV) PATH=$(CURDIR)/$(BIN):$$PATH \
		DAGSTER_HOME=$(DAGSTER_HOME_DIR) EMATIX_DATA_DIR=$(DATA_DIR) \
		exec $(BIN)/dg dev -h $(HOST) -p $(PORT)

test: $(INSTALLED) ## Lint, then run the whole test suite (unit + integration).
	$(BIN)/ruff check .
	$(BIN)/pytest -q

lint: $(INSTALLED) ## Lint with ruff.
	$(BIN)/ruff check .

format: $(INSTALLED) ## Format with ruff.
	$(BIN)/ruff format .

clean: ## Remove caches, build output and local dev state (.dagster_home, .data).
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info .tmp_dagster_home_* \
		$(DAGSTER_HOME_DIR) $(DATA_DIR)
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

distclean: clean ## `clean`, and remove .venv too.
	rm -rf $(VENV)
