# skilltrial — `make demo` runs the platform with the sample trial; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test lint typecheck jstest pytest bench prereqs setup setup-dev frontend clean

prereqs:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null || \
	  { echo "skilltrial needs Python 3.11 or newer as '$(PYTHON)' (set PYTHON=/path/to/python3.11)"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || \
	  { echo "'$(PYTHON)' lacks venv/ensurepip (on Debian: apt-get install python3-venv)"; exit 1; }
	@command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' || \
	  { echo "skilltrial needs Node.js 18 or newer with npm to build the editor (node: $$(node --version 2>/dev/null || echo missing))"; exit 1; }

$(VENV)/.installed: pyproject.toml | prereqs
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

FRONTEND_SOURCES := $(wildcard frontend/src/*) frontend/build.mjs frontend/package-lock.json

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json | prereqs
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

frontend/dist/task.js: frontend/node_modules/.installed $(FRONTEND_SOURCES)
	cd frontend && npm run --silent build

frontend: frontend/dist/task.js

setup: $(VENV)/.installed frontend/dist/task.js
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput -v0

setup-dev: $(VENV)/.installed-dev

demo: setup
	$(PY) manage.py demo_setup --host http://$(HOST):$(PORT)
	@echo "Serving on http://$(HOST):$(PORT)/ (Ctrl-C stops)"
	$(PY) manage.py runserver $(HOST):$(PORT) --noreload

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) tools/shape.py --check

typecheck: setup-dev
	$(VENV)/bin/mypy skilltrial trials quizzes analysis api

# The suite runs Celery's tasks in-process whatever the shell says; the tests that need Redis
# (the deployment rehearsal, the queue position) start their own workers and pick their own
# Redis database.
pytest: setup-dev frontend/dist/task.js
	REDIS_URL= CELERY_BROKER_URL= CELERY_RESULT_BACKEND= $(PY) -m pytest

jstest: frontend/node_modules/.installed
	cd frontend && npm test --silent

test: lint typecheck jstest pytest

bench: setup-dev
	$(PY) bench/bench_enroll.py
	$(PY) bench/bench_telemetry.py
	$(PY) bench/bench_load.py
	$(PY) bench/bench_queues.py
	$(PY) bench/bench_runner.py studies/trio-skill-formation/tasks/*/solution.py
	$(PY) bench/bench_check.py
	$(PY) bench/bench_data.py
	$(PY) bench/bench_analysis.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache frontend/node_modules frontend/dist
