# Local twin of docker-compose.yml. `make up` and `make test` work as the first command on a clone.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(CURDIR)/$(VENV)/bin
INSTALLED := $(VENV)/.installed
DEMO_FILE ?= sample_data/binance-futures-btcusdt-ethusdt-2025-12-16.ndjson.gz
DEMO_REDIS_URL ?= redis://127.0.0.1:6379/1
MARKET_GROUPS ?= btcusdt,ethusdt,solusdt,bnbusdt|xrpusdt,dogeusdt,adausdt|avaxusdt,linkusdt,dotusdt|ltcusdt|trxusdt
MARKET_SYMBOLS ?= $(subst |,$(comma),$(MARKET_GROUPS))
MARKET_REDIS_URL ?= redis://127.0.0.1:6379/2
comma := ,
SOAK_MINUTES ?= 1
SOAK_SPEED ?= 60

.DEFAULT_GOAL := help
.PHONY: help setup up demo demo-market down test test-unit lint bench soak all clean screenshot

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(INSTALLED)  ## virtualenv + pinned requirements; redis-server when missing

$(INSTALLED): requirements.txt requirements-dev.txt
	scripts/install-system-deps.sh redis
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

up: setup  ## Redis if none answers, then the four services (Ctrl-C stops them)
	$(PY) -m scripts.local_redis start
	PATH="$(BIN):$$PATH" $(PY) -m scripts.local_services run || [ $$? -eq 130 ]

demo: setup  ## the same on the recorded data shipped in sample_data/, offline
	$(MAKE) up SOURCE=replay REPLAY_FILE=$(DEMO_FILE) REPLAY_SHIFT=1 REPLAY_LOOP=1 \
		REDIS_URL=$(DEMO_REDIS_URL) SQLITE_PATH=data/demo.db

demo-market: setup  ## a 12-symbol synthetic universe in 5 groups, offline, opening on the screener
	$(MAKE) up SOURCE=synthetic SYMBOLS=$(MARKET_SYMBOLS) SYNTHETIC_GROUPS='$(MARKET_GROUPS)' \
		SYNTHETIC_TICK_RATE=240 SYNTHETIC_MEAN_REVERSION=1 DASH_OPEN_VIEW=screener REDIS_URL=$(MARKET_REDIS_URL) \
		SQLITE_PATH=data/market.db

down:  ## stop the services and the Redis that `make up` started (nothing else)
	$(PY) -m scripts.local_services stop
	$(PY) -m scripts.local_redis stop

test: setup  ## every tier: unit, integration (real Redis + SQLite), e2e
	scripts/install-system-deps.sh redis
	$(PY) -m pytest

test-unit: setup  ## the quick loop: pure code only
	$(PY) -m pytest tests/unit

lint: setup  ## ruff (lint + format) and mypy --strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

screenshot: setup  ## refresh docs/dashboard.png and docs/screener.png from the browser tests
	UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/e2e/test_dashboard_pipeline.py -k alert_rule
	UPDATE_SCREENSHOT=1 $(PY) -m pytest tests/e2e/test_dashboard_screener.py

bench: setup  ## benchmarks; results in bench/results/
	$(PY) -m bench

soak: setup  ## SOAK_MINUTES (1) of replay at SOAK_SPEED (60x): memory bounded, nothing lost
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES) --speed $(SOAK_SPEED)

all: lint test  ## the gate

clean:  ## remove caches (keeps data/ and the venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache
