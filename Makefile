# Minimal Makefile for the bench branch; the full one (run, test, lint, …) lands from main.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: bench

$(PY):
	python3 -m venv $(VENV)

# Figures of issue 7 as one JSON document on stdout (progress on stderr). Uses DATABASE_URL /
# REDIS_URL when set, else local PostgreSQL (database nexus_bench) and Redis; installs wrk.
bench: $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m bench $(BENCH_ARGS)
