# Two commands do all the set-up: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install lint security format typecheck migrations-check check clean worker beat bench loadtest eval prod-smoke

$(STAMP): requirements/base.txt requirements/production.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

install: $(STAMP)

## make run: install, migrate, load demo data, create the admin user, serve on 127.0.0.1:8000
run: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py ensure_admin
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

## make test: install and run the whole suite (uses DATABASE_URL / REDIS_URL when set)
test: install
	@mkdir -p var
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make security: bandit over our code (tests and migrations excluded); medium+ at medium+
## confidence fails. pip-audit needs its advisory service: it runs in .github/workflows/security.yml.
BANDIT_PATHS := analytics personalization ops portfolio deploy bench loadtests
security: install
	$(BIN)/bandit -q -r $(BANDIT_PATHS) -x '*/tests/*,*/migrations/*' \
		--severity-level medium --confidence-level medium

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: install
	$(BIN)/mypy .

migrations-check: install
	$(BIN)/python manage.py makemigrations --check --dry-run

check: lint security typecheck migrations-check test

worker: install
	$(BIN)/celery -A portfolio worker --loglevel=INFO

beat: install
	$(BIN)/celery -A portfolio beat --loglevel=INFO --schedule=var/celerybeat-schedule

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .mypy_cache

## make bench: throughput and latency next to their ceilings -> docs/PERFORMANCE.md (needs wrk,
## the local PostgreSQL and Redis; about 25 minutes)
bench: install
	$(BIN)/python -m bench

## make loadtest: 1,000 locust users against the production-mode stack -> docs/PERFORMANCE.md
loadtest: install
	$(BIN)/python -m bench.loadtest

## make eval: segmentation accuracy, macro-F1 and calibration on labelled synthetic visitors
eval: install
	$(BIN)/python manage.py evaluate_segments

## make prod-smoke: the container entrypoint's roles with production settings on local PostgreSQL + Redis
prod-smoke: install
	bash deploy/prod_smoke.sh
