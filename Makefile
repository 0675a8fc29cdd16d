# The README's two commands: `make run` and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test bench faults fuzz lint format install

$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m oms.launch run

test: $(STAMP)
	$(PY) -m oms.launch test $(ARGS)

bench: $(STAMP)
	$(PY) -m oms.launch bench $(ARGS)

# The fault suite at full scale (10,000 fills through kill -9 and so on): see the README.
faults: $(STAMP)
	OMS_FAULTS_SCALE=full OMS_TEST_WORKERS=1 $(PY) -m oms.launch test tests/reliability -m faults $(ARGS)

# The API fuzzed at full depth: schemathesis, every check, every role (see the README).
fuzz: $(STAMP)
	OMS_FUZZ_EXAMPLES=$${OMS_FUZZ_EXAMPLES:-200} $(PY) -m oms.launch test tests/security/test_api_fuzz.py tests/security/test_url_walk.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
