# LoanLedger: `make test` installs what is missing, then runs the whole suite.
VENV := .venv
PY := $(VENV)/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/$(VENV)/solcx
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: setup test demo run gas bench lint-contracts clean

setup: $(VENV)/.installed node_modules/.installed $(SOLCX_BINARY_PATH)/solc-v0.8.37

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test,postgres,train]"
	touch $@

node_modules/.installed: package.json package-lock.json
	npm install --no-audit --no-fund  # pinned by package-lock.json; npm 11 refuses `npm ci` on anvil's optional per-platform packages
	touch $@

# py-solc-x (and so ape-solidity and Slither) finds the solc-js bridge here: nothing is downloaded.
$(SOLCX_BINARY_PATH)/solc-v0.8.37: toolchain/solc-bridge.js $(VENV)/.installed
	mkdir -p $(SOLCX_BINARY_PATH)
	ln -sf $(CURDIR)/toolchain/solc-bridge.js $@

test: setup
	$(PY) -m pytest -q tests

# The whole stack as real processes on a fresh ledger, a lending scenario over HTTP, a summary
# (printed, and written to var/demo-summary.json). Exit 0 only when every auditor check passes.
demo: setup
	$(PY) scripts/demo.py

# The stack on the persisted state in var/, until Ctrl-C.
run: setup
	$(VENV)/bin/loanledger run

# Gas per operation on a fresh anvil: a table, and bench/results/gas.json.
gas: setup
	$(PY) bench/gas.py

# Throughput figures: each script prints a table and writes bench/results/<name>.json.
bench: setup
	$(PY) bench/ledger.py
	$(PY) bench/oracle.py
	$(PY) bench/api.py
	$(PY) bench/api_read.py

# Slither over the contracts, compiled from the same standard-JSON input as everywhere else (the
# solc-js bridge honours it; Slither's own solc invocation would drop via-IR). Fails on medium or high;
# low findings are printed and each accepted one is explained beside its code.
lint-contracts: setup
	test -x $(VENV)/bin/slither || $(VENV)/bin/pip install -q -e ".[lint]"  # once: a reinstall would want the index
	$(PY) -m ledger.artifacts build/standard-input.json
	$(VENV)/bin/slither build/standard-input.json --compile-force-framework solc-json \
		--solc $(SOLCX_BINARY_PATH)/solc-v0.8.37 --filter-paths node_modules --exclude-informational --fail-medium

clean:
	rm -rf $(VENV) node_modules build .build
