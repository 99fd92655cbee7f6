# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv on first use.
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup fixtures demo test test-fast bench clean
setup:
	@bash scripts/setup.sh

fixtures: setup
	@$(PY) scripts/make_fixtures.py

demo: setup
	@$(PY) scripts/demo.py

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

test-fast: setup
	@$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

bench: setup
	@$(PY) bench/run_all.py

clean:
	rm -rf build demo_output
