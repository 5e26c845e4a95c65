"""Fitting speed against a reference commit: the same prepared snapshots, fitted by both.

The snapshots (features and labels) are built once and pickled; each fit then runs in a
fresh child process with ``PYTHONPATH`` pointing at either this tree's ``src`` or the
reference commit's (exported with ``git archive`` under ``benchmarks/.cache/``), with that
code's default params (changed defaults are part of what is compared), the two
alternating ``--repeat`` times. Fit seconds are ``train.fit``'s own ``fit_s`` (all models,
baselines, calibration, refits and backtest predictions); CPU seconds are the child's
user + system time, steadier than wall time on a shared machine. The headline metrics
come from each side's first run (fits are deterministic: the runs' metrics must agree).

Run with ``OMP_WAIT_POLICY=PASSIVE`` (``benchmarks/train.py`` calls this too)::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/fit_speed.py --buyers 20000 --seed 7
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import emit_result, markdown_table, run_child  # noqa: E402

CACHE = HERE / ".cache"
# main just before issue #15's fitting changes (prediction converted once, faster
# baselines, the booster settings in README "Fitting speed").
REFERENCE = "01c991d"
HEADLINE = {
    "stage.macro_f1": "stage macro-F1",
    "inflection.can_advance.roc_auc": "inflection ROC-AUC (can advance)",
    "inflection.roc_auc": "inflection ROC-AUC (all)",
    "stage.best_iteration": "stage rounds",
    "inflection.best_iteration": "inflection rounds",
}
TOLERANCE = 0.003  # issue #15: stage macro-F1 and inflection ROC-AUC within this


def reference_src(ref: str) -> Path:
    """The reference commit's ``src`` folder, exported once under the cache."""
    root = HERE.parent
    sha = subprocess.run(
        ["git", "rev-parse", "--short=12", ref],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    folder = CACHE / f"fit-reference-{sha}"
    if not (folder / "src" / "stageml").exists():
        folder.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha, "src"], cwd=root, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder / "src"


def compare(data_path: Path, ref: str, *, repeat: int, timeout: float) -> dict[str, Any]:
    """Fit the pickled training data with the reference and this tree, alternating."""
    sides = {"reference": reference_src(ref), "current": HERE.parent / "src"}
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for _ in range(repeat):
        for side, src in sides.items():
            print(f"  fitting with the {side} code ({src})", flush=True)
            result = run_child(
                Path(__file__),
                ["--child", str(data_path)],
                timeout=timeout,
                env={"PYTHONPATH": str(src)},
            )
            print(f"    -> {result.get('fit_s', result.get('error'))}", flush=True)
            runs[side].append(result)
    summary: dict[str, Any] = {"ref": ref, "repeat": repeat}
    for side, found in runs.items():
        good = [r for r in found if "fit_s" in r]
        summary[side] = {
            "fit_s": statistics.median(r["fit_s"] for r in good) if good else None,
            "cpu_s": statistics.median(r["cpu_s"] for r in good) if good else None,
            "all_fit_s": [r.get("fit_s") for r in found],
            "metrics": good[0]["metrics"] if good else {},
            "stageml": good[0]["stageml"] if good else None,
            "deterministic": all(r["metrics"] == good[0]["metrics"] for r in good),
            "errors": [r["error"] for r in found if "error" in r],
        }
    return summary


def table(summary: dict[str, Any]) -> str:
    """The Markdown table of a comparison, the speed-up and the metric differences."""
    ref, cur = summary["reference"], summary["current"]
    rows = [
        [
            name,
            _fmt(side["fit_s"], ".1f"),
            _fmt(side["cpu_s"], ".1f"),
            *[_fmt(side["metrics"].get(k), ".0f" if "iteration" in k else ".4f") for k in HEADLINE],
        ]
        for name, side in ((f"reference {summary['ref']}", ref), ("this tree", cur))
    ]
    lines = [
        f"### Fitting against {summary['ref']} (median of {summary['repeat']}, same snapshots)\n",
        markdown_table(
            ["code", "fit s", "child CPU s", *HEADLINE.values()], rows, numeric=range(1, 8)
        ),
    ]
    if ref["fit_s"] and cur["fit_s"]:
        lines.append(
            f"\nfitting {ref['fit_s'] / cur['fit_s']:.2f}x faster (wall), "
            f"{ref['cpu_s'] / cur['cpu_s']:.2f}x (CPU); target 2x"
        )
    for key in ("stage.macro_f1", "inflection.can_advance.roc_auc", "inflection.roc_auc"):
        if key in ref["metrics"] and key in cur["metrics"]:
            diff = cur["metrics"][key] - ref["metrics"][key]
            verdict = "within" if abs(diff) <= TOLERANCE else "OUTSIDE"
            lines.append(f"{HEADLINE[key]}: {diff:+.4f} ({verdict} {TOLERANCE})")
    errors = ref["errors"] + cur["errors"]
    if errors or not (ref["deterministic"] and cur["deterministic"]):
        lines.append(
            f"errors: {errors}; deterministic: {ref['deterministic']}, {cur['deterministic']}"
        )
    return "\n".join(lines)


def _fmt(value: Any, spec: str) -> str:
    return "error" if value is None else format(value, spec)


def child(data_path: Path) -> None:
    """Fit the pickled training data with whichever stageml is on ``PYTHONPATH``."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    import stageml
    from stageml.config import Params
    from stageml.models.train import fit

    data, delay = pickle.loads(data_path.read_bytes())  # noqa: S301 - our own cache
    params = Params()
    params = params.model_copy(
        update={"labels": params.labels.model_copy(update={"label_delay": delay})}
    )
    clock = time.perf_counter()
    # As benchmarks/train.py runs train(): one BLAS thread (see its --blas-threads).
    with threadpool_limits(1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fit(data, params)
    emit_result(
        {
            "fit_s": result.timings["fit_s"],
            "wall_s": time.perf_counter() - clock,
            "metrics": {k: result.metrics[k] for k in HEADLINE if k in result.metrics},
            "stageml": str(Path(stageml.__file__).parent),
        }
    )


def pickled_data(export: Any, params: Any, name: str) -> Path:
    """Prepare the training snapshots of a loaded export once; the pickle's path."""
    from stageml.models.train import prepare_training

    path = CACHE / f"fit-data-{name}.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Each side fits with its own default params (the settings are part of what is compared),
    # with the label delay the snapshots were built with.
    path.write_bytes(pickle.dumps((prepare_training(export, params), params.labels.label_delay)))
    return path


def simulated_data(buyers: int, seed: int) -> Path:
    """Simulate and load an export (as ``benchmarks/train.py`` does), then pickle its data."""
    from stageml.config import Params
    from stageml.data.simulate import simulate, write_export
    from stageml.data.validate import load_export

    folder = CACHE / f"train-sim-{buyers}-seed{seed}"
    write_export(simulate(buyers, seed=seed), folder)
    params = Params()
    export = load_export(folder, stages=params.recorded_stages, require_stage_history=True)
    return pickled_data(export, params, f"{buyers}-seed{seed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ref", default=REFERENCE, help="the reference commit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(Path(args.child))
        return 0
    data = simulated_data(args.buyers, args.seed)
    summary = compare(data, args.ref, repeat=args.repeat, timeout=args.timeout)
    print("\n" + table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
