"""Next-touch check: estimated touch lifts against the simulator's planted truth.

One simulated world where each seller touch has a known, stage-appropriate effect
(:data:`stageml.data.world.TOUCH_EFFECTS`). A model is trained on one export of that world
(the company's history, no trial); a second export holds a randomised trial: buyers enrolled
at weekly instants get one touch drawn at random, or none. The trial's buyers are split in
two: a T-learner is fitted on one half, and everything is judged on the other half against
the truth the simulator wrote (``touch_truth``: the true stage and every touch's true lift).

1. Stage x touch lift table (by TRUE stage, held-out buyers): rank correlation within stages,
   MAE and best-touch recovery, for the model-based counterfactual, the T-learner and the
   baseline that recommends each stage's most frequent touch in the logged history.
2. Per buyer: Qini coefficient and AUUC of each policy's recommended touch on the held-out
   randomised buyers, read from outcomes (noisy) and from the true lifts; random scores 0.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/touch.py --quick
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/touch.py

Results go to ``benchmarks/results/touch.json`` (``touch.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import markdown_table  # noqa: E402

from stageml.config import Params, load_params  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.span import data_span  # noqa: E402
from stageml.data.validate import Export, load_export  # noqa: E402
from stageml.data.world import TOUCH_EFFECTS, WorldParams  # noqa: E402
from stageml.models.labels import build_labels  # noqa: E402
from stageml.models.train import train  # noqa: E402
from stageml.tactics.check import (  # noqa: E402
    interval_coverage,
    lift_columns,
    qini,
    stage_touch_table,
    table_agreement,
    true_qini,
)
from stageml.tactics.counterfactual import counterfactual_lift  # noqa: E402
from stageml.tactics.points import features_at_points  # noqa: E402
from stageml.tactics.recommend import model_inputs, most_frequent_touch  # noqa: E402
from stageml.tactics.uplift import TLearner  # noqa: E402

TOUCHES = tuple(TOUCH_EFFECTS)


def _export(
    n: int, seed: int, knobs: WorldParams, folder: Path, params: Params
) -> tuple[Export, Any]:
    """A simulated export in the taxonomy of ``params`` (its stages and exits)."""
    sim = simulate(n, seed=seed, params=knobs, stages=params.stages, exits=params.exits)
    write_export(sim, folder)
    return load_export(folder, stages=params.recorded_stages, require_stage_history=True), sim


def _held_out(truth: pd.DataFrame) -> np.ndarray:
    """Half of the trial's buyers, by a hash of the id (all of a buyer's rows together)."""
    return np.asarray(pd.util.hash_array(truth["buyer_id"].to_numpy(dtype=str)) % 2 == 1)


def _policy(lifts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    columns = lift_columns(lifts)
    values = lifts[columns].to_numpy()
    best = values.argmax(axis=1)
    names = np.asarray([c.removeprefix("lift_") for c in columns], dtype=object)
    return names[best], values[np.arange(len(values)), best]


def _scored_trial(
    args: argparse.Namespace, params: Any, clock: dict[str, float]
) -> tuple[Any, ...]:
    """Simulate the history and the trial, train on the history, score the trial rows."""
    horizon = int(params.labels.horizon / pd.Timedelta(days=1))
    world = WorldParams(touch_effects=True, trial_horizon_days=horizon)
    trial_world = WorldParams(
        touch_effects=True,
        randomised_share=1.0,
        enrol_share=args.enrol_share,
        trial_horizon_days=horizon,
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        history, _ = _export(args.train_buyers, args.seed, world, Path(tmp) / "history", params)
        export, sim = _export(args.buyers, args.seed + 1, trial_world, Path(tmp) / "trial", params)
        clock["simulate_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = train(history, params).model
        clock["train_s"] = time.perf_counter() - t0
    truth = sim.touch_truth.rename(columns={"assigned_at": "as_of"})
    labels = build_labels(
        truth,
        export.stage_history,
        stages=params.stages,
        config=params.labels,
        data_end=data_span(export.interactions, export.stage_history)[1],
        exits=params.exits,
    )
    truth["y"] = labels["inflection"].to_numpy()
    truth = truth[truth["y"].notna()].reset_index(drop=True)
    truth["y"] = truth["y"].astype(int)
    held = _held_out(truth)
    t0 = time.perf_counter()
    # Counterfactual lifts are judged on the held-out half only; the fitting half needs
    # only the scores the T-learner takes as inputs.
    history_table = export.stage_history
    cf = counterfactual_lift(
        model,
        export.interactions,
        export.buyers,
        truth[held],
        TOUCHES,
        stage_history=history_table,
        threads=1,
    )
    clock["counterfactual_s"] = time.perf_counter() - t0
    fit_rows = features_at_points(
        model,
        export.interactions,
        export.buyers,
        truth[~held],
        stage_history=history_table,
        threads=1,
    )
    fit_scores = model.predict_features(fit_rows, threads=1).set_index(truth.index[~held])
    cf = pd.concat([cf.set_index(truth.index[held]), fit_scores]).sort_index()
    frequent = most_frequent_touch(history.interactions, history.stage_history, TOUCHES)
    return truth, cf, frequent, model.stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buyers", type=int, default=60_000, help="trial export buyers")
    parser.add_argument("--train-buyers", type=int, default=6_000, help="history export buyers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--enrol-share", type=float, default=0.5, help="per trial day in play")
    parser.add_argument("--quick", action="store_true", help="8,000 + 3,000 buyers")
    parser.add_argument("--cache", type=Path, help="keep/reuse the scored trial rows here")
    parser.add_argument("--bags", type=int, help="T-learner refits (default: touches.bags)")
    args = parser.parse_args()
    if args.quick:
        args.buyers, args.train_buyers = 8_000, 3_000
    params = load_params(HERE.parent / "params.yaml")
    clock: dict[str, float] = {}
    if args.cache is not None and args.cache.exists():
        cached = pd.read_pickle(args.cache)
        truth, cf, frequent, stage_names = (
            cached["truth"],
            cached["cf"],
            cached["frequent"],
            cached["stages"],
        )
    else:
        truth, cf, frequent, stage_names = _scored_trial(args, params, clock)
        if args.cache is not None:
            pd.to_pickle(
                {"truth": truth, "cf": cf, "frequent": frequent, "stages": stage_names}, args.cache
            )
    held = _held_out(truth)
    X = model_inputs(cf, stage_names)
    fitted, coverage = {}, {}
    test = truth[held].reset_index(drop=True)
    interval = params.touches.interval
    for base in ("logistic", "lightgbm"):
        t0 = time.perf_counter()
        learner = TLearner(
            base=base,
            n_bags=args.bags or params.touches.bags,
            interval=interval,
            random_state=args.seed,
        ).fit(X[~held], truth.loc[~held, "touch"], truth.loc[~held, "y"])
        bags = learner.predict_bags(X[held])
        columns = [f"lift_{t}" for t in learner.touches_]
        fitted[base] = pd.DataFrame(bags.mean(axis=0), columns=columns)
        clock[f"t_learner_{base}_s"] = time.perf_counter() - t0
        coverage[base] = interval_coverage(
            bags, test["stage"].to_numpy(), test[columns], interval=interval
        )
        print(f"{interval:.0%} interval coverage of the true lifts, {base}: {coverage[base]}")
    cf_test = cf[held].reset_index(drop=True)
    true_lifts = test[[f"lift_{t}" for t in TOUCHES]]
    stages = [s for s in params.stages if s in set(test["stage"])]
    true_table = stage_touch_table(test, stages)
    estimates = {
        "counterfactual (model)": stage_touch_table(cf_test.assign(stage=test["stage"]), stages),
        **{
            f"T-learner, {base} (trial)": stage_touch_table(
                lift.assign(stage=test["stage"]), stages
            )[list(true_table.columns)]
            for base, lift in fitted.items()
        },
    }
    freq_table = frequent.reindex(index=true_table.index, columns=true_table.columns)
    rows = []
    for name, table in {**estimates, "most frequent touch (baseline)": freq_table}.items():
        agreement = table_agreement(table, true_table)
        if name.startswith("most frequent"):
            agreement["mae"] = float("nan")  # frequencies are not lifts
        rows.append({"method": name, **agreement, "best": table.idxmax(axis=1).to_dict()})

    predicted = cf_test["stage"].to_numpy()
    open_rows = predicted != stage_names[-1]
    by_predicted = stage_touch_table(test.assign(stage=predicted)[open_rows], stage_names[:-1])
    named = [("counterfactual (model)", cf_test)]
    named += [(f"T-learner, {b} (trial)", f) for b, f in fitted.items()]
    for row, (name, lifts) in zip(rows, named, strict=False):
        table = stage_touch_table(
            lifts.assign(stage=predicted)[open_rows], list(by_predicted.index)
        )
        agreement = table_agreement(table, by_predicted)
        row["by_predicted"] = {**agreement, "best": table.idxmax(axis=1).to_dict()}
        print(f"by predicted stage, {name}: {row['by_predicted']}")
    print("true best by predicted stage:", by_predicted.idxmax(axis=1).to_dict())
    base_rec = frequent.idxmax(axis=1).reindex(cf_test["stage"]).to_numpy()
    policies = {
        "counterfactual (model)": _policy(cf_test),
        **{f"T-learner, {base} (trial)": _policy(lift) for base, lift in fitted.items()},
        "most frequent touch (baseline)": (base_rec, cf_test["inflection_probability"].to_numpy()),
        "oracle (true best touch)": _policy(true_lifts),
    }
    qrows = []
    for name, (rec, score) in policies.items():
        observed = qini(rec, score, test["touch"].to_numpy(), test["y"].to_numpy(), TOUCHES)
        oracle = true_qini(rec, score, true_lifts)
        qrows.append(
            {
                "policy": name,
                "qini": observed["qini"],
                "auuc": observed["auuc"],
                "true_qini": oracle["qini"],
                "true_auuc": oracle["auuc"],
            }
        )

    print(
        f"trial rows labelled: {len(truth)} (held out: {int(held.sum())}); "
        f"history buyers {args.train_buyers}, trial buyers {args.buyers}; timings {clock}"
    )
    print("\nTrue stage x touch lift (held-out trial buyers, by true stage):")
    print(true_table.round(3).to_markdown())
    for name, table in estimates.items():
        print(f"\n{name}:")
        print(table.round(3).to_markdown())
    print(
        "\n"
        + markdown_table(
            ["method", "rank corr (within stage)", "MAE", "best touch recovered", "best per stage"],
            [
                [
                    r["method"],
                    f"{r['rank_correlation']:.2f}",
                    "-" if np.isnan(r["mae"]) else f"{r['mae']:.3f}",
                    f"{r['best_recovered']:.0%}",
                    ", ".join(f"{k}: {v}" for k, v in r["best"].items()),
                ]
                for r in rows
            ],
            numeric=(1, 2, 3),
        )
    )
    print(
        "\n"
        + markdown_table(
            [
                "policy",
                "Qini (outcomes)",
                "AUUC (outcomes)",
                "Qini (true lift)",
                "AUUC (true lift)",
            ],
            [
                [
                    r["policy"],
                    f"{r['qini']:.4f}",
                    f"{r['auuc']:.4f}",
                    f"{r['true_qini']:.4f}",
                    f"{r['true_auuc']:.4f}",
                ]
                for r in qrows
            ],
            numeric=(1, 2, 3, 4),
        )
    )
    print(
        "\n"
        + markdown_table(
            [
                f"T-learner ({learner.n_bags} refits)",
                f"stage x touch inside the {interval:.0%} interval",
                "mean width",
                "buyer x touch inside",
                "mean width",
            ],
            [
                [
                    base,
                    f"{c['stage_touch']:.0%}",
                    f"{c['stage_touch_width']:.3f}",
                    f"{c['buyer']:.0%}",
                    f"{c['buyer_width']:.3f}",
                ]
                for base, c in coverage.items()
            ],
            numeric=(1, 2, 3, 4),
        )
    )
    out = HERE / "results" / ("touch.quick.json" if args.quick else "touch.json")
    out.parent.mkdir(exist_ok=True)
    payload = {
        "args": vars(args),
        "timings": clock,
        "tables": rows,
        "qini": qrows,
        "interval_coverage": coverage,
        "true_table": true_table.to_dict(),
        **{k: v.to_dict() for k, v in estimates.items()},
    }
    out.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
