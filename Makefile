# Set-up is two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DATE ?= 2026-12-01
OUT ?= maps

.PHONY: install demo test lint format bench bench-solomon bench-solomon-long bench-api clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dispatch plan --cases sample_data/cases.csv --collectors sample_data/collectors.csv \
		--crews sample_data/crews.csv \
		--policy sample_data/policy.yaml --history sample_data/visit_history.csv --triage \
		--date $(DATE) --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bench_plan.py
	$(BIN)/python bench/bench_scale.py
	$(MAKE) --no-print-directory bench-solomon bench-solomon-long

# Solver quality on Solomon VRPTW: dispatch's backends, PyVRP, VROOM (about 9 min; --all for 56).
bench-solomon: $(STAMP)
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/solomon.py --readme

# The other Solomon tables of bench/README.md: 60 s on six instances, and two more seeds (~35 min).
bench-solomon-long: $(STAMP)
	$(BIN)/python -m pip install --quiet -r bench/requirements.txt
	$(BIN)/python bench/solomon.py --instances R101 R109 R201 R209 RC101 RC105 --time-limits 60 \
		--solvers dispatch-ortools dispatch-auto pyvrp vroom \
		--out bench/results/solomon_60s.csv --readme
	$(BIN)/python bench/solomon.py --seed 1 --solvers dispatch-auto pyvrp \
		--out bench/results/solomon_seed1.csv --readme
	$(BIN)/python bench/solomon.py --seed 2 --solvers dispatch-auto pyvrp \
		--out bench/results/solomon_seed2.csv --readme

# Service load on loopback: itinerary reads by collector link and 1,000-case upserts (~3 minutes).
bench-api: $(STAMP)
	$(BIN)/python bench/bench_api.py --readme

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
