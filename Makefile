# Two commands on a fresh Debian 12 machine, as root:
#   make demo   set everything up and run the whole pipeline on the bundled catalogue
#   make test   set everything up and run the checks and the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO ?= demo-out

.PHONY: setup system-deps suricata zeek demo test lint check bench clean

# Zeek 7.0 LTS from a prebuilt tarball (checked against the SHA256SUMS beside it); by
# default the one a checkout finds in ../shared/zeek/. Never committed into the repo.
ZEEK_TARBALL ?= $(firstword $(wildcard ../shared/zeek/zeek-7.0.*-bookworm-amd64.tar.zst))

setup: system-deps suricata zeek $(STAMP)

system-deps:
	bash scripts/install-system-deps.sh

suricata:
	bash scripts/install-suricata.sh

zeek:
	ZEEK_TARBALL='$(ZEEK_TARBALL)' bash scripts/install-zeek.sh

# Reinstall only when the project's dependencies change.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,spark]'
	touch $@

check: setup
	$(BIN)/sensor-plugins generate --check

lint: setup
	$(BIN)/ruff check sensor_plugins tests bench

test: setup check lint
	$(BIN)/pytest -q --durations=20

demo: setup
	$(BIN)/sensor-plugins generate
	$(BIN)/sensor-plugins pcaps --out $(DEMO)/pcaps
	@# Suricata always; real Zeek too where it is installed (replay's default engine choice).
	$(BIN)/sensor-plugins replay $(DEMO)/pcaps/*.pcap --zeek-script $(DEMO)/pcaps/trust-test-ca.zeek --log-dir $(DEMO)/replay
	@if command -v zeek >/dev/null 2>&1; then \
		echo "Zeek $$(zeek --version | awk '{print $$NF}') logs of the scenario pcaps, analysed:"; \
		$(BIN)/sensor-plugins analyze $(DEMO)/replay/zeek --format jsonl --out $(DEMO)/zeek-findings.jsonl || [ $$? -eq 1 ]; \
		echo "zeek findings: $$(wc -l < $(DEMO)/zeek-findings.jsonl) in $(DEMO)/zeek-findings.jsonl"; \
		$(BIN)/sensor-plugins analyze $(DEMO)/replay/zeek --format table | sed -n '/Findings by category/,$$p' || true; \
	else \
		echo "zeek is not installed: the scenario pcaps ran through Suricata only (Zeek 7.0 LTS on PATH adds them to the demo)"; \
	fi
	$(BIN)/python bench/make_logs.py --rows 60000 --days 21 --seed 7 --out $(DEMO)/logs
	@# analyze exits 1 when it finds something, which is the expected outcome here.
	$(BIN)/sensor-plugins analyze $(DEMO)/logs --format jsonl --out $(DEMO)/findings.jsonl || [ $$? -eq 1 ]
	@echo "findings: $$(wc -l < $(DEMO)/findings.jsonl) in $(DEMO)/findings.jsonl; summary:"
	$(BIN)/sensor-plugins analyze $(DEMO)/logs --format table | sed -n '/Findings by category/,$$p' || true
	$(BIN)/sensor-plugins report $(DEMO)/logs --html $(DEMO)/report.html
	@echo "report: $$(realpath $(DEMO)/report.html)"

bench: setup
	$(BIN)/python bench/run.py $(if $(ET_RULES),--et-rules $(ET_RULES))

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
