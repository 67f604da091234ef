# Two set-up commands do everything: `make run` (demo server) and `make test` (whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXT    := kiro2api/_eventstream$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
PORT   ?= 8080

.PHONY: all install run test lint unit bench bench-codec clean

all: test

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel "Cython>=3"
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

# The editable install compiles the extension once; this rule rebuilds it whenever the .pyx changes.
$(EXT): kiro2api/_eventstream.pyx $(STAMP)
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $(EXT)

install: $(STAMP) $(EXT)

run: install
	$(BIN)/kiro2api serve --demo --port $(PORT)

lint: install
	$(BIN)/ruff check kiro2api tests benchmarks
	$(BIN)/ruff format --check kiro2api tests benchmarks
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest tests/unit -q

test: install lint
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/run_all.py

bench-codec: install
	$(BIN)/python benchmarks/bench_eventstream.py

clean:
	rm -rf $(VENV) build *.egg-info kiro2api/_eventstream.c kiro2api/*.so
