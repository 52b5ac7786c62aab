# qsplit — make targets.  `make demo` and `make test` do all the set-up a
# fresh machine needs (PostgreSQL running, pgq installed, .venv built).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help venv prereqs install-sql demo test soak clean

help:
	@echo "make demo                    split the USECASE stream end to end on the local server"
	@echo "make test                    run the test suite against the local server"
	@echo "make soak                    kill the driver at random for SOAK_SECONDS (300), then compare"
	@echo "make install-sql DSN='...'   bring a target database's qsplit schema to head"
	@echo "make venv                    build .venv with qsplit and its test dependencies"

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

prereqs:
	@scripts/ensure-postgres.sh

install-sql: venv
	@if [ -z "$(DSN)" ]; then echo "usage: make install-sql DSN='<libpq conninfo of the target database>'" >&2; exit 2; fi
	@QSPLIT_DSN="$$DSN" $(BIN)/alembic -c alembic.ini upgrade head

demo: prereqs venv
	@scripts/demo.sh

test: prereqs venv
	$(BIN)/pytest $(PYTEST_ARGS)

# not part of `make test` (which runs a 30 s version): SOAK_SECONDS=300 by default
soak: prereqs venv
	$(BIN)/python tests/soak.py

clean:
	rm -rf $(VENV) build dist driver/*.egg-info .pytest_cache
