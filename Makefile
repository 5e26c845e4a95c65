# Two commands do everything on a fresh machine with Python 3.11 (and Java 17 for Spark):
#   make demo   set up .venv, simulate a CRM export (with a randomised touch trial), validate,
#               train, register, score, and list the next touches the trial supports
#   make test   set up .venv and run the whole test suite
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# LightGBM/OpenMP threads spin while waiting; on a shared 2-core machine that costs ~20x.
export OMP_WAIT_POLICY ?= PASSIVE
DEMO_DIR ?= data/demo
DEMO_BUYERS ?= 5000

.PHONY: demo test setup lock lint clean repro

$(STAMP):
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q "uv==0.13.9"
	$(BIN)/uv pip install --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/pytest

demo: $(STAMP)
	$(BIN)/stageml simulate --buyers $(DEMO_BUYERS) --seed 7 --out $(DEMO_DIR) --params params.yaml --touch-trial 1.0
	$(BIN)/stageml validate --data $(DEMO_DIR) --params params.yaml
	$(BIN)/stageml features --data $(DEMO_DIR) --params params.yaml --as-of 2026-06-01 --out $(DEMO_DIR)/features.parquet
	$(BIN)/stageml train --data $(DEMO_DIR) --params params.yaml --metrics-out models/metrics.json --report-out models/report.html
	$(BIN)/stageml score --data $(DEMO_DIR) --as-of 2026-06-29 --out models/demo_scores.parquet --reasons 3
	$(BIN)/stageml top --scores models/demo_scores.parquet --n 10
	$(BIN)/stageml next-touch --data $(DEMO_DIR) --as-of 2026-06-29 --out models/demo_touches.parquet --show 10 --trial $(DEMO_DIR)/trial.parquet
	@echo "Scores: models/demo_scores.parquet (+ _rejects.csv, .summary.json); next touches: models/demo_touches.parquet (+ _lift.png); model report: models/report.html"
	@echo "Done. MLflow runs and the registered model: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"

# The reproducible DVC pipeline (ingest → validate → snapshots → train → explain → score).
repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc metrics show

# Re-resolve the pinned environment after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --extra spark --python-version 3.11 -o requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks pipelines
	$(BIN)/mypy

clean:
	rm -rf $(VENV) mlruns mlflow.db models/* data/demo
