# Everything a fresh machine needs: `make install`, then `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install test lint bench

install:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# llama-cpp-python builds from source (about 7 minutes on 2 cores the first time; pip caches the wheel)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -e '.[local,dev]'
	$(BIN)/matcha models fetch

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check matcha tests benchmarks examples
	$(BIN)/mypy matcha

bench:
	$(BIN)/python benchmarks/embed_throughput.py
