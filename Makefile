# rollback-receiver — the two commands a new user needs: `make run`, `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: screenshots run test lint rules prometheusrule bench tools redis venv constraints clean

# Two stamps: `make run` needs only the runtime dependencies, `make test` adds the test extra.
# Both install through constraints.txt (the pins CI and the Dockerfile use too).
$(VENV)/.runtime-installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.runtime-installed
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

venv: $(VENV)/.test-installed

constraints: ## re-resolve every runtime + test dependency in a fresh venv and pin it
	bash scripts/refresh-constraints.sh

tools: ## Debian packages for rules, routing and end-to-end tests (installed when missing)
	@bash scripts/ensure-tools.sh

redis: ## the machine's Redis on 127.0.0.1:6379, started when it is not answering
	@bash scripts/ensure-redis.sh

lint: venv
	$(BIN)/ruff check receiver tests bench scripts
	$(BIN)/ruff format --check receiver tests bench scripts
	$(BIN)/mypy

rules: tools ## the shipped rules alone: promtool check + unit tests
	promtool check rules alerts/*.yml
	promtool test rules alerts/tests/*-test.yml

prometheusrule: venv ## regenerate deploy/kubernetes/prometheusrule.yaml from alerts/
	$(PY) scripts/gen-prometheusrule.py

test: venv tools redis lint
	$(BIN)/pytest -q -n 2 --dist loadfile

run: $(VENV)/.runtime-installed
	@bash scripts/run-dev.sh

bench: venv tools redis
	$(PY) bench/webhook_bench.py
	$(PY) bench/memory_bench.py
	$(PY) bench/chain_bench.py
	$(PY) bench/scale_bench.py
	$(PY) bench/hostile_bench.py

screenshots: venv tools redis ## refresh the console screenshots docs/console.md shows
	CONSOLE_SCREENSHOTS=docs/images $(BIN)/pytest -q tests/browser

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
