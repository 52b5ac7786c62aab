# qsplit — make targets.  `make demo` and `make test` do all the set-up a
# fresh machine needs (PostgreSQL running, pgq installed, .venv built).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv prereqs install-sql sql-script demo test test-matrix test-two-servers bench bench-profile soak clean

help:
	@echo "make demo                    split the USECASE stream end to end on the local server"
	@echo "make test                    run the test suite against the local server"
	@echo "make test-matrix             the tests marked matrix on every other supported PostgreSQL major,"
	@echo "                             and source/target on the oldest/newest (scripts/pg-matrix.sh)"
	@echo "make test-two-servers        the fault tests with the target on a second local cluster"
	@echo "make soak                    kill the driver at random for SOAK_SECONDS (300), then compare"
	@echo "make install-sql DSN='...'   bring a target database's qsplit schema to head"
	@echo "make sql-script [FROM=rev]   write the offline install (or upgrade-from-rev) SQL file"
	@echo "                             for a DBA to apply with psql (OUT=file or dir/, default build/sql/)"
	@echo "make bench                   qsplit next to the COPY limit and the original, one and two servers (BENCH_ARGS=--help)"
	@echo "make bench-profile           where the target's time goes: qsplit's target half next to L's COPY (PROFILE_ARGS=--help)"
	@echo "make venv                    build .venv with qsplit and its test dependencies"

venv: $(STAMP)

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

prereqs:
	@scripts/prepare-machine.sh

install-sql: venv
	@if [ -z "$(DSN)" ]; then echo "usage: make install-sql DSN='<libpq conninfo of the target database>'" >&2; exit 2; fi
	@QSPLIT_DSN="$$DSN" $(BIN)/alembic -c alembic.ini upgrade head

# one self-contained SQL file (one transaction) for DBAs who apply reviewed
# SQL themselves: Alembic offline output + the function layer, recording the
# revision in qsplit.alembic_version.  FROM=<rev>: upgrade from that revision.
sql-script: venv
	@$(BIN)/python -m qsplit.sqlscript $(if $(FROM),--from '$(FROM)') -o '$(or $(OUT),build/sql/)'

demo: prereqs venv
	@scripts/demo.sh

# a run killed midway leaves its template databases behind (named with
# QSPLIT_TEST_DB_PREFIX, qsplit_test by default): the next run drops them
# first instead of failing every test on DuplicateDatabase
PYTEST_DB_ARGS = --postgresql-drop-test-database

test: prereqs venv
	$(BIN)/pytest $(PYTEST_DB_ARGS) $(PYTEST_ARGS)

# the tests marked `matrix` on every supported major but the local server's,
# then mixed source/target majors; servers from scripts/pg-matrix.sh
# (PG_MATRIX_MAJORS="16 18" to choose, PG_MATRIX_MIXED=0 to skip the pairs)
test-matrix: prereqs venv
	@scripts/test-matrix.sh

# the fault matrix (both loops) with the target on a second server: the
# cluster scripts/target-cluster.sh makes and starts (QSPLIT_TARGET_PORT,
# 5433 unless set); the restart test restarts one server at a time
FAULT_TESTS ?= tests/test_faults.py tests/test_read_ahead.py
test-two-servers: prereqs venv
	port=$$(scripts/target-cluster.sh) && QSPLIT_TEST_TARGET_PORT=$$port $(BIN)/pytest $(PYTEST_DB_ARGS) $(PYTEST_ARGS) $(FAULT_TESTS)

# not part of make test: a few minutes of load; creates and drops its own
# databases (qsplit_bench_src/_dst unless BENCH_ARGS names others), on the
# local server and on the second cluster scripts/target-cluster.sh starts
# (QSPLIT_TARGET_PORT, 5433 unless set); draws docs/benchmark.png
BENCH_PLOT ?= docs/benchmark.png
bench: prereqs venv
	$(BIN)/python bench/bench.py --plot $(BENCH_PLOT) $(BENCH_ARGS)

# one backend each: qsplit's staging COPY + apply_batch next to L's COPY into
# one event table, on the same events (CPU, WAL, bytes written; perf and
# strace when the machine has them); scratch databases qsplit_profile_*
bench-profile: prereqs venv
	$(BIN)/python bench/profile.py $(PROFILE_ARGS)

# not part of `make test` (which runs a 20 s version of each mode): SOAK_SECONDS=300 by default,
# SOAK_READ_AHEAD=1 by default (the overlapping loop; 0: the sequential one)
soak: prereqs venv
	$(BIN)/python tests/soak.py

clean:
	rm -rf $(VENV) build dist driver/*.egg-info .pytest_cache
