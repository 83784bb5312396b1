# make run  – set everything up and serve the site with an embedded worker
# make test – set everything up and run the test suite (in parallel, TEST_WORKERS)
# make test-fast – the edit loop: no browser, no slow tests, SQLite only (under a minute)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Stoplight Prism: a mock of SendGrid's API that validates every request we send.
PRISM  := .prism/node_modules/.bin/prism
AXE    := .npm/node_modules/axe-core/axe.min.js
HOST   ?= 127.0.0.1
PORT   ?= 5000
# One address for every process: `flask serve` (make run) records where it answers in
# instance/base_url, and any process here without FUNNEL_BASE_URL reads it from there.
# Root can install system packages directly; anyone else goes through sudo.
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test test-fast lint lock worker bench bench-million bench-million-seed bench-million-figures system-deps pdf-deps clean

# Installs come from the lock files, so every machine gets the same versions;
# the project itself is installed on top without resolving anything again.
$(BIN)/.installed: requirements-dev.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

# After changing dependencies in pyproject.toml: pin them again.
LOCK_FLAGS := --quiet --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host
lock: $(BIN)/.installed
	$(BIN)/pip-compile $(LOCK_FLAGS) -o requirements.lock pyproject.toml
	$(BIN)/pip-compile $(LOCK_FLAGS) --extra dev -o requirements-dev.lock pyproject.toml

lint: $(BIN)/.installed
	$(BIN)/ruff check funnel tests bench wsgi.py
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Shell fragments for the two targets below: which PDF packages are missing, and
# installing whatever ended up in $$missing (one apt-get run, only when needed).
PDF_MISSING := ldconfig -p | grep -q 'libpangoft2-1.0.so.0' || missing="$$missing libpango-1.0-0 libpangoft2-1.0-0"; \
	[ -d /usr/share/fonts/truetype/dejavu ] || missing="$$missing fonts-dejavu-core";
APT_INSTALL_MISSING := if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# Debian packages: Chromium for browser tests, SpamAssassin for the email checks,
# Pango and fonts for WeasyPrint (the plan's PDF). Installed only when missing.
system-deps:
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium chromium-driver"; \
	command -v spamassassin >/dev/null || missing="$$missing spamassassin"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	$(PDF_MISSING) \
	$(APT_INSTALL_MISSING)

# What `make run` needs beyond Python: Pango and fonts for the plan's PDF.
pdf-deps:
	@missing=""; \
	$(PDF_MISSING) \
	$(APT_INSTALL_MISSING)

run: $(BIN)/.installed pdf-deps
	$(BIN)/flask --app funnel db upgrade
	HOST=$(HOST) PORT=$(PORT) $(BIN)/flask --app funnel serve

worker: $(BIN)/.installed
	$(BIN)/flask --app funnel worker

# The SendGrid tests run Prism from here (Node and npm must be on the machine).
$(PRISM):
	npm install --no-save --no-audit --no-fund --prefix .prism @stoplight/prism-cli@5

# axe-core, the accessibility checker the dashboard's browser tests inject.
$(AXE):
	npm install --no-save --no-audit --no-fund --prefix .npm axe-core@4

# In order: system-deps brings npm, which the Prism and axe-core steps need.
# pytest-xdist: one process per core; each has its own PostgreSQL database, Prism
# and browser (tests/parallel.py); --dist worksteal lets an idle process take
# queued tests from a busy one, so one long test does not hold up the end.
TEST_WORKERS ?= auto
# The tests' files (SQLite databases, outboxes) go to memory where the machine has
# /dev/shm: on disk each SQLite commit waited about 5 ms for its fsync.
TEST_TMPDIR ?= $(shell [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "$${TMPDIR:-/tmp}")
test: $(BIN)/.installed system-deps $(PRISM) $(AXE)
	TMPDIR=$(TEST_TMPDIR) $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# No browser, no slow tests, no PostgreSQL: the quick answer while editing.
test-fast: $(BIN)/.installed
	TMPDIR=$(TEST_TMPDIR) FUNNEL_TEST_POSTGRES_URL= FUNNEL_REQUIRE_POSTGRES= $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal \
		-m "not browser and not slow and not postgresql" -p no:cacheprovider -q $(PYTEST_ARGS)

# Benchmarks are not part of the test suite; each prints
# "name: value unit (ratio x baseline)" against a baseline measured in the same run.
# wrk drives the page benchmark; bc is for quick ratios by hand. The figures at a
# million (goals 5-7) come last: the list is seeded once into funnel_bench_million
# (10-15 minutes on 2 cores) and reused by later runs; `make bench-million` seeds
# it again from scratch.
bench: $(BIN)/.installed
	@command -v wrk >/dev/null && command -v bc >/dev/null || \
		{ $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq wrk bc; }
	$(BIN)/pytest bench/test_worker_bench.py --benchmark-only -p no:cacheprovider -q -s
	$(BIN)/python bench/bench_sendgrid.py
	$(BIN)/python bench/bench_sendgrid_worker.py --subscribers 20000 --repeat 3
	$(BIN)/python bench/bench_newsletter_worker.py --readers 20000 --repeat 3
	$(BIN)/python bench/bench_import.py
	$(BIN)/python bench/bench_pages.py
	$(BIN)/python bench/bench_pages_cpu.py
	@psql "$(BENCH_PSQL)/funnel_bench_million" -Atqc "SELECT 1 FROM subscriber LIMIT 1" 2>/dev/null | grep -q 1 || \
		{ echo "no seeded list at $(BENCH_PG_URL)/funnel_bench_million: seeding it once (10-15 minutes)"; \
		  $(MAKE) --no-print-directory bench-million-seed; }
	$(MAKE) --no-print-directory bench-million-figures

# The list at a million, on PostgreSQL: seed, the worker idle pass and memory,
# the admin pages, and an import of a million rows.
# BENCH_PG_URL is a server where these two databases may be dropped and made.
BENCH_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432
BENCH_PSQL = $(subst +psycopg,,$(BENCH_PG_URL))
BENCH_SUBSCRIBERS ?= 1000000
bench-million: bench-million-seed
	$(MAKE) --no-print-directory bench-million-figures

bench-million-seed: $(BIN)/.installed
	psql "$(BENCH_PSQL)/postgres" -qc "DROP DATABASE IF EXISTS funnel_bench_million" -c "CREATE DATABASE funnel_bench_million"
	DATABASE_URL=$(BENCH_PG_URL)/funnel_bench_million $(BIN)/flask --app funnel db upgrade
	DATABASE_URL=$(BENCH_PG_URL)/funnel_bench_million SECRET_KEY=bench /usr/bin/time -f "seed: %e s, max RSS %M kB" \
		$(BIN)/flask --app funnel demo seed --subscribers $(BENCH_SUBSCRIBERS)

# The figures also send one newsletter issue to as many readers with 4 workers through
# a SendGrid fake, in their own database (funnel_bench_send; docs/million.md).
bench-million-figures: $(BIN)/.installed
	DATABASE_URL=$(BENCH_PG_URL)/funnel_bench_million $(BIN)/flask --app funnel db upgrade
	$(BIN)/python bench/bench_million.py --database $(BENCH_PG_URL)/funnel_bench_million
	$(BIN)/python bench/bench_million_send.py --database $(BENCH_PG_URL)/funnel_bench_send \
		--readers $(BENCH_SUBSCRIBERS) --workers 4
	psql "$(BENCH_PSQL)/postgres" -qc "DROP DATABASE IF EXISTS funnel_bench_import" -c "CREATE DATABASE funnel_bench_import"
	DATABASE_URL=$(BENCH_PG_URL)/funnel_bench_import $(BIN)/flask --app funnel db upgrade
	/usr/bin/time -f "import: max RSS %M kB" $(BIN)/python bench/bench_import.py \
		--rows $(BENCH_SUBSCRIBERS) --database $(BENCH_PG_URL)/funnel_bench_import

clean:
	rm -rf $(VENV) instance/outbox
