# Quick start: `make demo` (set up and launch the app) and `make test` (set up and run the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean sysdeps-demo sysdeps-test

# System tools from apt when missing (as root, e.g. CI or a container): ffmpeg/ffprobe for the app's live
# turn-by-turn preview, Chromium for the browser tests. Elsewhere, say what to install and carry on.
define apt_need
	@missing=""; for tool in $(1); do command -v $$tool >/dev/null 2>&1 || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else echo "note: please install$$missing ($(2)); $(3)"; fi; \
	fi
endef

sysdeps-demo:
	$(call apt_need,ffmpeg ffprobe,ffmpeg,the app then shows the video when complete instead of turn by turn)

sysdeps-test:
	$(call apt_need,ffmpeg ffprobe chromium,ffmpeg chromium,browser tests are skipped without Chromium)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	@# Compile the CPU renderer's kernels into numba's cache now (~4 s once), not in the first conversation.
	$(BIN)/python -c "from warmchat.face import build_rig; from warmchat.render.cpu import CpuRenderer; CpuRenderer(build_rig('examples/astronaut.png'))"
	touch $(STAMP)

setup: $(STAMP)

demo: setup sysdeps-demo
	$(BIN)/python app.py

test: setup sysdeps-test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest -m browser  # the browser tests, kept out of the default (fast) suite

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
