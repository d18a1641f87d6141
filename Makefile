# Certrail: `make run` starts the app with demo data; `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.install.stamp
NODE_STAMP := web/node_modules/.install.stamp
DATABASE_URL ?= sqlite:///instance/certrail.sqlite
export DATABASE_URL

.PHONY: install run serve-prod test lint bench bench-http clean

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

$(NODE_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: install
	$(BIN)/certrail db upgrade
	$(BIN)/certrail demo load
	$(BIN)/certrail serve --host 127.0.0.1 --port 5000

# Production mode: PostgreSQL only, e.g.
#   make serve-prod DATABASE_URL=postgresql://postgres@127.0.0.1:5432/certrail WEB_WORKERS=4 JOB_WORKERS=2
WEB_WORKERS ?= 4
JOB_WORKERS ?= 2
serve-prod: install
	$(BIN)/certrail serve-prod --host 127.0.0.1 --port 5000 \
		--web-workers $(WEB_WORKERS) --job-workers $(JOB_WORKERS)

test: install
	$(BIN)/ruff check engine web tests bench
	$(BIN)/ruff format --check --quiet engine web tests bench
	$(BIN)/certrail models lint
	$(BIN)/python -m pytest -q -m "not serial" --numprocesses=auto --maxprocesses=4 --durations=15
	$(BIN)/python -m pytest -q -m serial --durations=5

lint: install
	$(BIN)/ruff check engine web tests bench

bench: install
	$(BIN)/python bench/engine_throughput.py

# API task completion under load (locust) against serve-prod on PostgreSQL, and 1,000 races.
bench-http: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/http_load.py --write-results

clean:
	rm -rf $(VENV) web/node_modules instance .pytest_cache
