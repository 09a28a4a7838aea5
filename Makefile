# Lizzy: `make run` starts the product, `make test` runs the whole suite. Both set themselves up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
PYTEST_ARGS ?=
# The suite on every core (pytest-xdist, at most 4 workers), one test file per worker at a time: a module's
# fixtures run once and its tests keep their order. Each worker has its own Redis database (tests/worker_env.py).
XDIST ?= -n auto --maxprocesses=4 --dist loadfile

.PHONY: install run test explore lint format bench clean browser audit django-tests screenshots soak

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) -m lizzy.devstack

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Headless Chromium + chromium-driver for tests/browser (apt-get, only when missing and root).
browser:
	./.ci/install-browser

# Known vulnerabilities in the pinned dependencies fail; an unreachable vulnerability service only warns.
audit: install
	./.ci/audit $(PY)

# Django's own cache tests from the pinned sdist, for tests/lizzy/cache/test_django_suite.py (once per version).
django-tests: install
	$(PY) -m tests.lizzy.cache.django_suite

test: lint browser audit django-tests
	$(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# The console's pages for docs/OPERATIONS.md, saved by the browser tests into docs/img/.
screenshots: install browser
	LIZZY_SCREENSHOTS=1 $(PY) -m pytest -q tests/browser/test_console_pages.py

# The property tests with fresh random examples (make test replays the same ones every run).
explore: install django-tests
	HYPOTHESIS_PROFILE=explore $(PY) -m pytest $(XDIST) $(PYTEST_ARGS)

# Long runs left out of `make test`: the session store's history checker (issue 13, one and two processes) on more seeds, longer
# schedules, and the tests marked soak (a minute of change capture under random writes).
soak: install
	LIZZY_SOAK=1 $(PY) -m pytest -q -p no:cacheprovider tests/sessions_app/store/test_history_checker.py $(PYTEST_ARGS)
	$(PY) -m pytest -m soak $(PYTEST_ARGS)

bench: install
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache
