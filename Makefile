# Two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= var/callbackd.toml

.PHONY: run test lint typecheck pytest systemd-analyze nodejs chromium testpbx-start testpbx-stop bench soak clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python tools/dev_run.py --config $(CONFIG)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) systemd-analyze nodejs chromium
	$(BIN)/pytest -q

# The unit's hardening test runs `systemd-analyze security --offline=yes`; install
# systemd (as a package, it is not started) only where the tool is missing.
systemd-analyze:
	@command -v systemd-analyze >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends systemd >/dev/null; }

# docs/webhooks.md's Node.js signature check is run by the tests (test_webhook_docs.py).
nodejs:
	@command -v node >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends nodejs >/dev/null; }

# The console's browser tests drive Debian's chromium through Playwright (never
# `playwright install`, which downloads a browser of its own).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# Every benchmark in one run, into one report (bench/README.md, "make bench"): prints
# the Markdown table and writes bench/out/report-<timestamp>.{md,json}. QUICK=1 runs
# smaller sizes in a few minutes. The PBX ones need the test PBX (tools/testpbx start).
bench: $(STAMP)
	$(BIN)/python -m bench.report $(if $(QUICK),--quick)

# Soak on the test PBX (root, tools/testpbx running; not part of `make test`): 100,000
# tasks, calls flowing for MINUTES (default 10) with each fault injected once; prints
# its report and writes bench/out/soak-<timestamp>.json (bench/README.md, "Soak").
soak: $(STAMP)
	$(BIN)/python -m bench.soak $(if $(MINUTES),--minutes $(MINUTES))

clean:
	rm -rf $(VENV) var
