"""Acceptance table of the inflection model: stageml vs a count GBM vs logistic, five data sets.

Each data set is trained once with the product's defaults (``prepare_training`` + ``fit``,
as ``stageml train`` does), and the three candidates are read from the run's own test rows
(``TrainingResult.inflection_test``), buyers who can still advance:

* **stageml**: the product's calibrated inflection probability;
* **count GBM**: LightGBM with default settings on the windowed activity counts, fitted on
  the same rows and labels (``stageml.models.baselines.count_gbm_baseline``);
* **logistic**: the run's logistic regression on all features.

Data sets: the project's simulator (``--buyers`` buyers, seed 11), the second simulated
world (``stageml.data.second_world``: four stages, another vocabulary, later and noisier
stage records; same size and seed) and the three real exports of ``benchmarks/real.py``.
Every metric gets a 95 % interval from a bootstrap over whole buyers
(``stageml.models.metrics.bootstrap_metrics``), and stageml minus each baseline a paired
one (``paired_bootstrap``).

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/quality.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/quality.py --kinds simulated second

Prints Markdown tables and writes ``benchmarks/results/quality.json`` (data sets already
measured are kept: ``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import real  # noqa: E402
from _common import markdown_table  # noqa: E402

from stageml.config import Params, load_params  # noqa: E402
from stageml.data.importers import import_export  # noqa: E402
from stageml.data.second_world import STAGES, simulate_second_world  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.validate import load_export  # noqa: E402
from stageml.models.metrics import bootstrap_metrics, paired_bootstrap  # noqa: E402
from stageml.models.train import TrainingResult, prepare_training  # noqa: E402
from stageml.models.train import fit as fit_models  # noqa: E402

CACHE = HERE / ".cache" / "quality"
RESULTS = HERE / "results" / "quality.json"
KINDS = ("simulated", "second", "taobao", "olist", "maven")
CANDIDATES = {"model": "stageml", "baseline_counts": "count GBM", "baseline_logistic": "logistic"}
METRICS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "brier": "Brier", "ece": "ECE"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    results: dict[str, Any] = {}
    if RESULTS.exists() and not args.fresh:
        results = json.loads(RESULTS.read_text())
    for kind in args.kinds:
        print(f"== {kind}", file=sys.stderr, flush=True)
        clock = time.perf_counter()
        trained = train_on(kind, args)
        results[kind] = {
            **compare(trained, draws=args.draws),
            "seconds": time.perf_counter() - clock,
            "final_stage": trained.model.params.train.inflection_fit.final_stage,
        }
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(metrics_table(results))
    print()
    print(versus_table(results))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/real"))
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--buyers", type=int, default=3000, help="simulated buyers per world")
    parser.add_argument("--draws", type=int, default=500, help="bootstrap draws")
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results")
    return parser.parse_args(argv)


def train_on(kind: str, args: argparse.Namespace) -> TrainingResult:
    """Write (or import) the data set and train stageml with its default params."""
    out = CACHE / kind
    shutil.rmtree(out, ignore_errors=True)
    if kind == "simulated":
        write_export(simulate(args.buyers, seed=11), out)
        params = Params()
    elif kind == "second":
        write_export(simulate_second_world(args.buyers, seed=11), out)
        params = Params(stages=STAGES)
    else:
        params = load_params(import_export(kind, args.data / real.FOLDERS[kind], out).params)
    export = load_export(out, stages=params.recorded_stages, require_stage_history=True)
    return fit_models(prepare_training(export, params), params)


def compare(trained: TrainingResult, *, draws: int) -> dict[str, Any]:
    """Per candidate, intervals of each metric; stageml minus each baseline, paired."""
    rows = trained.inflection_test[trained.inflection_test["can_advance"]]
    y, buyers = rows["label"].to_numpy(int), rows["buyer_id"].astype(str).to_numpy()
    return {
        "rows": len(rows),
        "buyers": int(len(np.unique(buyers))),
        "positive_rate": float(y.mean()),
        "metrics": {
            name: bootstrap_metrics(y, rows[name].to_numpy(float), buyers, draws=draws)
            for name in CANDIDATES
        },
        "versus": {
            name: paired_bootstrap(
                y, rows["model"].to_numpy(float), rows[name].to_numpy(float), buyers, draws=draws
            )
            for name in CANDIDATES
            if name != "model"
        },
    }


def metrics_table(results: dict[str, Any]) -> str:
    columns = ["data", "model", *METRICS.values()]
    lines = []
    for kind, r in results.items():
        size = f"{r['rows']:,} rows, {r['buyers']:,} buyers, rate {r['positive_rate']:.3f}"
        label = f"{kind} ({size})"
        for name, title in CANDIDATES.items():
            cells = [_interval(r["metrics"][name][m], 4 if m == "brier" else 3) for m in METRICS]
            lines.append([label, title, *cells])
    return markdown_table(columns, lines, numeric=range(2, len(columns)))


def versus_table(results: dict[str, Any]) -> str:
    columns = ["data", "stageml minus", "Δ ROC-AUC [95 % CI]", "Δ Brier [95 % CI]"]
    lines = [
        [kind, CANDIDATES[name], _interval(v["roc_auc"], 4, "+"), _interval(v["brier"], 5, "+")]
        for kind, r in results.items()
        for name, v in r["versus"].items()
    ]
    return markdown_table(columns, lines, numeric=range(2, len(columns)))


def _interval(value: list[float], digits: int, sign: str = "") -> str:
    point, low, high = value
    return f"{point:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


if __name__ == "__main__":
    raise SystemExit(main())
