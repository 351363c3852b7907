# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m train.pipeline --model_dir=runs/pipeline --preset=quick

test: $(STAMP)
	$(BIN)/ruff check keras_caps train tflite benchmarks tests
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q tests
	KERAS_CAPS_NB_QUICK=1 TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m pytest -q --nbmake --nbmake-timeout=300 colab

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(BIN)/python -m benchmarks.throughput --preset=quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
