# Lake: the two commands are `make demo` and `make test`; both install what they need.
# Everything downloaded or built is cached under ~/.cache/lake; state lives in .lake/.
SHELL := /bin/bash
VENV := .lake/venvs/core
LAKE := $(VENV)/bin/lake
PY := $(VENV)/bin/python

.PHONY: help venv venvs install up down status demo test test-all test-unit bench lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv:  ## the core venv (Spark, clients, CLI, API, tests)
	@infra/bootstrap.sh core

venvs: venv  ## all three venvs: core, airflow, superset
	@infra/bootstrap.sh airflow
	@infra/bootstrap.sh superset

install: venv  ## download and build every server (cached)
	@$(LAKE) install

up: venv  ## start the local stack
	@$(LAKE) up

down:  ## stop everything the stack started
	@[ -x $(LAKE) ] && $(LAKE) down || true

status:  ## a table of the servers
	@$(LAKE) status

demo: venv  ## start the stack and run the main job end to end
	@$(LAKE) up
	@$(LAKE) demo

test: venv  ## lint, start the test stack, run every test not marked slow, stop it; ALL=1: every test (CI)
	@infra/test.sh $(if $(ALL),,-m "not slow")

test-all: venv  ## every test, the slow ones too (what CI runs)
	@infra/test.sh

test-unit: venv  ## only the tests that need no server
	@eval "$$($(LAKE) env test)" && $(PY) -m pytest -m "not integration"

bench: venv  ## benchmarks, on a stack of their own (never your lake); figures go to bench/results/
	@eval "$$($(LAKE) env bench)" && $(PY) -m bench

lock:  ## re-resolve requirements/*.in into the lock files
	@for n in core airflow superset; do \
	  UV_CACHE_DIR=$$HOME/.cache/lake/uv $$HOME/.cache/lake/tools/bin/uv pip compile -q \
	    --python-version 3.11 requirements/$$n.in -o requirements/$$n.lock; done

clean:  ## stop the stack and remove its state (data, logs); the venvs and download cache stay
	@[ -x $(LAKE) ] && $(LAKE) clean --yes || rm -rf .lake
