# NEXUS ingestion: the verbs people reach for. `make run` and `make test` work on a fresh
# machine with Python 3.11 (or python3) and nothing else configured.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Copies of what was last installed: reinstall only when the requirement files change.
# They live in var/ (this checkout's own state), and creating the venv deletes them.
STAMPS := var/make
RUNTIME_STAMP := $(STAMPS)/requirements.txt
DEV_STAMP := $(STAMPS)/requirements-dev.txt
CELERY := $(VENV)/bin/celery -A nexus_project

.PHONY: help run servers superuser test chaos soak lint fmt bench migrate shell web worker beat flower clean deps dev-deps

help:
	@echo "make run      embedded PostgreSQL and valkey, migrate, then web :8000, worker, beat and Flower :5555"
	@echo "make servers  only the embedded PostgreSQL and valkey, for the parts below in other terminals"
	@echo "make superuser  the first admin login (asks for a name and password; make run or make servers up)"
	@echo "make test     the pytest suite (own PostgreSQL and valkey unless DATABASE_URL / REDIS_URL; PYTEST_ARGS=...)"
	@echo "make chaos    the fault-injection suite: kills, flushes and restarts under load (~17 min)"
	@echo "make soak     20 min of traffic and faults, leak figures as JSON (SOAK_MINUTES=...)"
	@echo "make lint     ruff check, ruff format --check, mypy"
	@echo "make fmt      ruff format and ruff check --fix"
	@echo "make bench    figures as one JSON document (real gunicorn, worker, PostgreSQL, Redis; ~10-12 min; FIGURES=4,5)"
	@echo "make migrate | shell | web | worker | beat | flower   one part alone"
	@echo "make clean    caches and build litter (keeps var/: PostgreSQL data, valkey data, secrets)"

$(PY):
	$(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	rm -f $(RUNTIME_STAMP) $(DEV_STAMP)

deps: $(PY)
	@mkdir -p $(STAMPS)
	@if ! cmp -s requirements.txt $(RUNTIME_STAMP); then \
		echo "installing requirements.txt into $(VENV)"; \
		$(PIP) install --quiet --disable-pip-version-check -r requirements.txt && cp requirements.txt $(RUNTIME_STAMP); \
	fi

dev-deps: deps
	@if ! cat requirements.txt requirements-dev.txt | cmp -s - $(DEV_STAMP); then \
		echo "installing requirements-dev.txt into $(VENV)"; \
		$(PIP) install --quiet --disable-pip-version-check -r requirements-dev.txt \
			&& cat requirements.txt requirements-dev.txt > $(DEV_STAMP); \
	fi

run: deps
	$(PY) -m nexus_project.devrun

servers: deps
	$(PY) -m nexus_project.devrun --servers

# The first admin login, in the database `make run` uses (its embedded PostgreSQL must be up:
# `make run` or `make servers` in another terminal). DJANGO_SUPERUSER_USERNAME/_EMAIL/_PASSWORD
# in the environment answer the prompts (Django's --noinput).
superuser: deps
	$(PY) manage.py createsuperuser $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput)

test: dev-deps
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# Starts its own PostgreSQL, Redis, RabbitMQ and fake Claude (needs their server packages,
# and root or their users for initdb and rabbitmq-server); see tests/chaos/test_chaos.py.
chaos: dev-deps
	$(VENV)/bin/pytest -m chaos tests/chaos $(PYTEST_ARGS)

# Steady traffic with a fault every few minutes, sampled each minute for leaks; prints one JSON
# document (tests/chaos/test_soak.py). Not in .ci/run. SOAK_MINUTES=60 make soak for longer.
SOAK_MINUTES ?= 20
soak: dev-deps
	SOAK_MINUTES=$(SOAK_MINUTES) $(VENV)/bin/pytest -m soak tests/chaos/test_soak.py -s -p no:randomly $(PYTEST_ARGS)

lint: dev-deps
	@rc=0; \
	$(VENV)/bin/ruff check . || rc=1; \
	$(VENV)/bin/ruff format --check . || rc=1; \
	$(VENV)/bin/mypy . || rc=1; \
	exit $$rc

fmt: dev-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Without DATABASE_URL these reach `make run`'s (or `make servers`') embedded PostgreSQL.
migrate: deps
	$(PY) manage.py migrate --noinput

shell: deps
	$(PY) manage.py shell

# One part alone. These use the environment as it is: without DATABASE_URL / REDIS_URL the
# settings point at the embedded PostgreSQL (var/postgres) and valkey (port 6390) that
# `make run` or `make servers` starts; set the URLs to use other servers.
# gunicorn.conf.py assumes production when DJANGO_ENV is unset; this verb is for development.
web: deps
	DJANGO_ENV=$${DJANGO_ENV:-development} $(VENV)/bin/gunicorn nexus_project.wsgi:application -c gunicorn.conf.py

worker: deps
	$(CELERY) worker --loglevel INFO

beat: deps
	$(CELERY) beat --loglevel INFO

# Flower reads FLOWER_BASIC_AUTH from the environment; `make run`'s dev credential is reused.
flower: deps
	@if [ -z "$${FLOWER_BASIC_AUTH:-}" ] && [ -f var/flower_basic_auth ]; then \
		export FLOWER_BASIC_AUTH="$$(cat var/flower_basic_auth)"; fi; \
	$(CELERY) flower --port=$${FLOWER_PORT:-5555} --address=127.0.0.1 --max_tasks=10000

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache $(STAMPS)
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

# Performance figures with same-run references, one JSON document on stdout (progress on
# stderr). Uses DATABASE_URL / REDIS_URL when set, else local PostgreSQL (database nexus_bench)
# and Redis on 6379; installs wrk with apt-get when it is missing. BENCH_ARGS="--scale 0.3"
# for a quick run; FIGURES=4,5 for a subset. See bench/README.md.
bench:
	@$(MAKE) --no-print-directory dev-deps >&2  # stdout carries only the JSON document
	@$(PY) -m bench $(if $(FIGURES),--only $(FIGURES)) $(BENCH_ARGS)
