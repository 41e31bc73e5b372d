# Two entry points for a newcomer: `make demo` and `make test`. Both build .venv themselves.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench chaos fuzz venv lock clean

# The runtime libraries exactly as the image installs them (requirements.lock), then the project and its dev tools:
# the tests and the replay gate run on what production runs.
$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# After a dependency change in pyproject.toml (for a ranged one, `$(BIN)/pip install -U <name>` first): pin the
# runtime closure into requirements.lock, then run the replay gate (tests/workflows/test_replay.py, and
# deploy/replay-gate.sh against production histories) before deploying the new lock.
lock: $(STAMP)
	$(BIN)/python deploy/lock.py

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sagsflow dev up --demo

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

# Two workers (pytest-xdist, one per core on the CI machine): most of the suite's time is spent waiting on servers,
# timers and subprocesses, so the two overlap. A module's tests stay on one worker (module-scoped stacks start once),
# and modules go out in the order tests/conftest.py sets (those with a `slow` test first), not xdist's own.
# Bytecode is written even where the shell says not to: the suite starts hundreds of `sagsflow` processes, and each
# would compile the whole project again.
pytest: $(STAMP)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadscope --no-loadscope-reorder

PYTEST_WORKERS ?= 2

# Every benchmark but the chaos soak, which runs for long (make chaos; 200 cases took 32 minutes on a loaded machine).
bench: $(STAMP)
	@set -e; for b in bench/*.py; do [ $$b = bench/chaos.py ] && continue; echo "== $$b"; $(BIN)/python $$b; done

# The chaos soak at full size (1,000 cases, 20 worker kills, 3 of PostgreSQL and of the Temporal server); a new seed
# each run (SAGSFLOW_CHAOS_SEED=<n> repeats one). Its last line is the JSON figures; make test runs a short form.
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py

# Before a release: the fuzz test of `make test` (tests/api/test_schemathesis.py) ten times as large, with a new seed
# each run (SAGSFLOW_FUZZ_SEED=<n> repeats one); its size and result go to bench/out/fuzz-<time>.json.
FUZZ_SIZE ?= SAGSFLOW_FUZZ_EXAMPLES=600 SAGSFLOW_FUZZ_SCENARIOS=400 SAGSFLOW_FUZZ_STEPS=10
fuzz: $(STAMP)
	@mkdir -p bench/out
	$(FUZZ_SIZE) SAGSFLOW_FUZZ_SEED=$${SAGSFLOW_FUZZ_SEED:-$$(date +%s)} \
	SAGSFLOW_FUZZ_REPORT=bench/out/fuzz-$$(date +%Y%m%d-%H%M%S).json \
	$(BIN)/python -m pytest tests/api/test_schemathesis.py -q -s -p no:cacheprovider --timeout=0

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
