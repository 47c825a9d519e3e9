# The two set-up commands of the README: `make demo` (main job) and `make test` (tests).
# Each does its whole set-up: venv + locked dependencies, then the local stack.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STRANGLER_HOME ?= $(HOME)/.cache/strangler
export STRANGLER_HOME
export DAGSTER_HOME ?= $(STRANGLER_HOME)/dagster
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PYTHONUNBUFFERED := 1
# Bytecode is cached (a shell may turn it off): every CLI, Dagster run worker and test
# subprocess would otherwise compile Dagster's sources again, ~3 s per process start.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: venv stack demo test lint typecheck imports down status ui browser bench

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check uv==0.13.8
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $@

venv: $(VENV)/.installed

stack: venv
	$(BIN)/strangler stack up

demo: stack
	$(BIN)/strangler demo

browser:
	./scripts/install-browser.sh

ui: stack
	$(BIN)/strangler ui

# TEST_WORKERS workers, each taking whole modules, slowest first; then, alone, the tests
# marked serial (tests/serial/ and the Kafka restart: they stop a service the others use;
# tests/conftest.py). CI counts the merged junit.xml.
TEST_WORKERS ?= 2
test: lint typecheck imports stack browser
	rm -f artifacts/junit-parallel.xml artifacts/junit-serial.xml
	$(BIN)/pytest -ra -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not serial" \
		--junitxml=artifacts/junit-parallel.xml tests
	$(BIN)/pytest -ra -m serial --junitxml=artifacts/junit-serial.xml tests
	$(BIN)/python -m tests.merge_junit artifacts/junit.xml artifacts/junit-parallel.xml \
		artifacts/junit-serial.xml

lint: venv
	$(BIN)/ruff check strangler tests bench
	$(BIN)/ruff format --check strangler tests bench

typecheck: venv
	$(BIN)/mypy strangler

imports: venv
	$(BIN)/lint-imports

# The whole chain at 100k and 1M events (long: the 1M day and five years of history);
# the table is printed, the rows go to artifacts/bench.json.
bench: stack
	mkdir -p artifacts
	$(BIN)/python -m bench.bench_chain --events 100000 --events 1000000 --json artifacts/bench.json

status: venv
	$(BIN)/strangler stack status

down: venv
	$(BIN)/strangler stack down
