# Two commands for a newcomer: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-fast lint format security bench fuzz soak clean clean-data

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: install
	$(BIN)/python -m service.bootstrap

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(MAKE) --no-print-directory security
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Static security analysis of the shipped code (a few seconds; part of `make test`).
# Every waived finding carries `# nosec Bxxx # reason` on its line.
security: install
	$(BIN)/bandit -q -r models training service

# Longer API fuzzing: more generated cases per operation, fresh ones every run.
fuzz: install
	VEA_FUZZ_EXAMPLES=$${VEA_FUZZ_EXAMPLES:-300} VEA_FUZZ_RANDOM=1 \
		$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_fuzz_api.py

# Every bench/ script with modest sizes (~10 minutes on 2 cores), then one table
# (bench/all.py; the scripts' own output goes to var/bench/logs/).
bench: install
	$(BIN)/python -m bench.all --json var/bench/all.json

# Load and soak: decisions + outcomes at a steady rate for 5 minutes against gunicorn on a
# private PostgreSQL, with faults (worker SIGKILL, PostgreSQL restart, promote/rollback,
# corrupt champion bundle); then every acknowledged write is checked in the database.
soak: install
	$(BIN)/python -m bench.soak --rate 150 --minutes 5 --backend postgresql --faults \
		--json var/bench/soak.json

# The environment, caches and files any command can make again. The database, the model
# registry and the API keys in it (var/vea.db*, var/registry) are what `make run` serves:
# a clean-up must not erase them; `make clean-data` does, on purpose.
clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache var/cache var/bench var/sim var/bootstrap

clean-data:
	rm -rf var
