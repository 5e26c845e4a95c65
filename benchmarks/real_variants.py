"""Inflection-model variants on the real exports and the simulated one: how defaults were chosen.

For every variant (a change of the inflection model's fitting, regularisation or features,
see ``VARIANTS``) and every data set (the three real exports of ``benchmarks/real.py`` and
the tests' simulated export, 1,500 buyers, seed 11), the script trains stageml
(``stageml.models.train.fit``) with seeds 7, 8 and 9 and records, on buyers who can still advance:

* the **validation** figures of the first fit (trained on the training period, stopped
  early on the validation period, calibrated there): what the selection rule reads;
* the **test** figures of the product's model (refitted on train + validation): reported,
  never used to choose.

The selection rule, fixed before the comparisons: greedy, one change at a time, a change is
kept if it raises the mean validation ROC-AUC (over seeds 7-9 and the data sets) by at
least 0.002. Calibration choices are not judged this way (calibration is fitted on the
validation period itself).

Feature variants are prototypes computed here in pandas from the export, strictly before
each as-of instant, and are not part of the product's feature engine. Variants that set
LightGBM options stageml does not expose (``linear_tree``, ``extra_trees``) add them to the
inflection booster's parameters for the run.

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine::

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/real_variants.py
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/real_variants.py --variants "old default"

Prints a Markdown table and writes ``benchmarks/results/real_variants.json`` (resumed: data
sets already measured for a variant are not rerun; ``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import real  # noqa: E402
from _common import markdown_table  # noqa: E402

from stageml.config import Params, load_params  # noqa: E402
from stageml.data.importers import import_export  # noqa: E402
from stageml.data.second_world import STAGES, simulate_second_world  # noqa: E402
from stageml.data.simulate import simulate, write_export  # noqa: E402
from stageml.data.validate import load_export  # noqa: E402
from stageml.models import choices, estimators, train  # noqa: E402
from stageml.models.metrics import inflection_metrics  # noqa: E402

CACHE = HERE / ".cache" / "real_variants"
RESULTS = HERE / "results" / "real_variants.json"
NESTED_RESULTS = HERE / "results" / "real_variants_nested.json"
SEEDS = (7, 8, 9)
KINDS = ("taobao", "olist", "maven")

LIGHTGBM = {"cat_smooth": 10.0, "cat_l2": 10.0, "min_data_per_group": 100, "max_cat_threshold": 32}
MILD = {"cat_smooth": 50.0, "cat_l2": 50.0, "min_data_per_group": 200, "max_cat_threshold": 32}
STRONG = {"cat_smooth": 200.0, "cat_l2": 100.0, "min_data_per_group": 500, "max_cat_threshold": 8}
SLOW = {"learning_rate": 0.02, "n_estimators": 1000, "early_stopping_rounds": 75}
SUBSAMPLE = {"feature_fraction": 0.5, "lambda_l2": 10.0}


@dataclass(frozen=True)
class Variant:
    """One inflection-model configuration: fitting, booster and feature changes."""

    class_weight: str | None = "balanced"
    booster: dict[str, Any] = field(default_factory=lambda: dict(LIGHTGBM))
    # Explicit, so that the rows keep their meaning when the product's default changes.
    fit: dict[str, Any] = field(
        default_factory=lambda: {
            "calibration": "centered_isotonic",
            "cooling": False,
            "final_stage": "zero",
            "recency_half_life": None,
        }
    )
    lightgbm: dict[str, Any] = field(default_factory=dict)
    features: str | None = None

    def but(self, **changes: Any) -> Variant:
        merged = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("booster", "fit"):
            merged[key] = {**merged[key], **changes.pop(key, {})}
        return Variant(**{**merged, **changes})


OLD = Variant()
NOCW = OLD.but(class_weight=None)
NEW = NOCW.but(booster=STRONG)
COOL = NEW.but(fit={"cooling": True})
SOFT = COOL.but(fit={"final_stage": "soft"})
# The candidate changes tried as the greedy rule's next step from a given default.
NEXT_STEPS: dict[str, Callable[[Variant], Variant]] = {
    "recency 1 horizon": lambda v: v.but(fit={"recency_half_life": 1.0}),
    "recency 2 horizons": lambda v: v.but(fit={"recency_half_life": 2.0}),
    "feature_fraction 0.5, lambda_l2 10": lambda v: v.but(booster=SUBSAMPLE),
    "min_child_samples 200": lambda v: v.but(booster={"min_child_samples": 200}),
    "learning rate 0.02": lambda v: v.but(booster=SLOW),
    "novelty features": lambda v: v.but(features="novelty"),
    "current-stage features": lambda v: v.but(features="stage"),
    "linear base": lambda v: v.but(fit={"linear_base": "activity_counts"}),
}


def next_steps(prefix: str, base: Variant) -> dict[str, Variant]:
    """Every candidate of ``NEXT_STEPS`` applied to ``base``, named ``<prefix> + <change>``."""
    return {f"{prefix} + {name}": change(base) for name, change in NEXT_STEPS.items()}


def calibrations(prefix: str, base: Variant) -> dict[str, Variant]:
    """``base`` with each other calibration map (judged by ``--nested``, not the rule)."""
    return {
        f"{prefix}, calibration {c}": base.but(fit={"calibration": c})
        for c in ("none", "sigmoid", "isotonic")
    }


def ablations(prefix: str, base: Variant) -> dict[str, Variant]:
    """One change at a time from ``base``: issue #18's list (judged with ``--nested``)."""
    return {
        f"{prefix}, final stage soft": base.but(fit={"final_stage": "soft"}),
        f"{prefix}, final stage none": base.but(fit={"final_stage": "none"}),
        f"{prefix}, activity counts only": base.but(features="counts_only"),
        f"{prefix}, no elapsed-time features": base.but(features="drop_durations"),
        f"{prefix}, 15 leaves depth 6": base.but(booster={"num_leaves": 15, "max_depth": 6}),
        f"{prefix}, no early stopping": base.but(booster={"early_stopping_rounds": 400}),
    }


VARIANTS: dict[str, Variant] = {
    "old default (class-weighted)": OLD,
    "no class weight": NOCW,
    "min_child_samples 200": OLD.but(booster={"min_child_samples": 200}),
    "feature_fraction 0.5, lambda_l2 10": OLD.but(booster=SUBSAMPLE),
    "learning rate 0.02 (1000 rounds, patience 75)": OLD.but(booster=SLOW),
    "categorical splits, mild": OLD.but(booster=MILD),
    "categorical splits, strong": OLD.but(booster=STRONG),
    "linear_tree": OLD.but(lightgbm={"linear_tree": True, "linear_lambda": 1.0}),
    "extra_trees": OLD.but(lightgbm={"extra_trees": True}),
    "linear base (activity counts)": OLD.but(fit={"linear_base": "activity_counts"}),
    "recency, half-life 0.5 horizon": OLD.but(fit={"recency_half_life": 0.5}),
    "recency, half-life 1 horizon": OLD.but(fit={"recency_half_life": 1.0}),
    "recency, half-life 2 horizons": OLD.but(fit={"recency_half_life": 2.0}),
    "recency, half-life 4 horizons": OLD.but(fit={"recency_half_life": 4.0}),
    "drop durations (days_since_*, gap_*)": OLD.but(features="drop_durations"),
    "drop tenure (days_since_first, gap_mean_days)": OLD.but(features="drop_tenure"),
    "drop durations and all-history counts": OLD.but(features="drop_durations_all"),
    "drop buyer attributes": OLD.but(features="drop_attributes"),
    "drop durations and buyer attributes": OLD.but(features="drop_durations_attributes"),
    "durations capped at the longest window": OLD.but(features="cap_durations"),
    "+ novelty features": OLD.but(features="novelty"),
    "+ current-stage features": OLD.but(features="stage"),
    "nocw + categorical splits, mild": NOCW.but(booster=MILD),
    "nocw + categorical splits, strong (new default)": NEW,
    **next_steps("nocw", NOCW),
    **next_steps("new", NEW),
    **calibrations("new", NEW),
    "new, no refit": NEW.but(fit={"refit": False}),
    "new + cooling (elapsed time monotone decreasing)": COOL,
    **calibrations("cooling", COOL),
    **next_steps("cooling", COOL),
    **ablations("cooling", COOL),
    "soft final stage (default before recency per run)": SOFT,
    "soft + recency chosen per run (none / 1 / 0.25 horizons, one standard error)": SOFT.but(
        fit={"recency_half_life": [None, 1.0, 0.25]}
    ),
}
NOVELTY = ["days_since_new_activity", "n_since_new_activity"]
STAGE = ["stage_so_far", "days_in_stage", "n_since_stage"]
DROPS: dict[str, Callable[[str], bool]] = {
    "counts_only": lambda c: not c.startswith("act_"),
    "drop_durations": lambda c: c.startswith(choices.ELAPSED_PREFIXES),
    "drop_tenure": lambda c: c in ("days_since_first", "gap_mean_days"),
    "drop_durations_all": lambda c: (
        c.startswith(choices.ELAPSED_PREFIXES)
        or (c.endswith("_all") and not c.startswith("distinct_"))
    ),
    "drop_attributes": lambda c: c.startswith("buyer_"),
    "drop_durations_attributes": lambda c: (
        c.startswith(choices.ELAPSED_PREFIXES) or c.startswith("buyer_")
    ),
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    path = NESTED_RESULTS if args.nested else RESULTS
    results: dict[str, Any] = {}
    if path.exists() and not args.fresh:
        results = json.loads(path.read_text())
    data = {kind: load_real(kind, args.data) for kind in KINDS}
    data["simulated"] = load_simulated()
    if args.second:
        data["second"] = load_simulated(second=True)
    if args.nested:
        data = {k: (e, nested_split(p, ps), ps) for k, (e, p, ps) in data.items()}
        for kind, (_, prepared, _) in data.items():
            print(f"{kind}: nested split {prepared.split.describe()}", file=sys.stderr)
    # In the order asked for (so a short run can measure the most telling variants first).
    asked = [n for v in args.variants for n in VARIANTS if v in n] if args.variants else VARIANTS
    wanted = list(dict.fromkeys(asked))
    for name in wanted:
        rows = results.setdefault(name, {})
        for kind, (export, prepared, params) in data.items():
            if kind not in rows:
                rows[kind] = measure(VARIANTS[name], export, prepared, params)
        print(f"{name}: {summary(rows)}", file=sys.stderr, flush=True)
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(results, indent=1) + "\n")
    # Nested figures are ranked against each other: show only the variants asked for.
    done = {n: results[n] for n in (wanted if args.nested else VARIANTS) if n in results}
    print(nested_table(done) if args.nested else table(done))
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/real"))
    parser.add_argument(
        "--variants", nargs="*", default=[], help="substrings of variant names, run in this order"
    )
    parser.add_argument("--fresh", action="store_true", help="ignore earlier results")
    parser.add_argument(
        "--second", action="store_true", help="add the second simulated world as a data set"
    )
    parser.add_argument(
        "--nested",
        action="store_true",
        help="backtest one period earlier: the validation period is the test (nested_split)",
    )
    return parser.parse_args(argv)


def load_real(kind: str, root: Path) -> tuple[Any, train.TrainingData, Params]:
    out = CACHE / kind
    shutil.rmtree(out, ignore_errors=True)
    imported = import_export(kind, root / real.FOLDERS[kind], out)
    params = load_params(imported.params)
    export = load_export(out, stages=params.recorded_stages, require_stage_history=True)
    return export, train.prepare_training(export, params), params


def load_simulated(*, second: bool = False) -> tuple[Any, train.TrainingData, Params]:
    """The tests' simulated export, or the second world's (``stageml.data.second_world``)."""
    out = CACHE / ("second" if second else "simulated")
    shutil.rmtree(out, ignore_errors=True)
    made = simulate_second_world(1500, seed=11) if second else simulate(1500, seed=11)
    write_export(made, out)
    params = Params(stages=STAGES) if second else Params()
    export = load_export(out, stages=params.stages)
    return export, train.prepare_training(export, params), params


def nested_split(prepared: train.TrainingData, params: Params) -> train.TrainingData:
    """The product's backtest moved one period earlier, so that the test period is never read.

    The validation instants become the test; the training period is split in time order
    into a training part and, after it, as many validation instants as the product uses
    (fewer where the horizon's purge would leave no training instant: Maven's 60-day
    horizon leaves one of each). Choices the validation period cannot judge, such as the
    calibration map fitted on it, are judged on this pseudo-test.
    """
    split, reach = prepared.split, params.labels.label_delay + params.labels.horizon
    for k in range(len(split.valid), 0, -1):
        valid = split.train[-k:]
        fitted = [t for t in split.train[:-k] if t + reach <= valid[0]]
        if fitted:
            shifted = train.TimeSplit(train=fitted, valid=valid, test=split.valid)
            return dataclasses.replace(prepared, split=shifted)
    raise RuntimeError(f"no nested split: {split.describe()}")


def configured(variant: Variant, params: Params, seed: int) -> Params:
    t = params.train
    inflection = t.inflection.model_copy(update=variant.booster)
    fit = t.inflection_fit.model_copy(update={"class_weight": variant.class_weight, **variant.fit})
    return params.model_copy(
        update={
            "seed": seed,
            "train": t.model_copy(update={"inflection": inflection, "inflection_fit": fit}),
        }
    )


def measure(
    variant: Variant, export: Any, prepared: train.TrainingData, params: Params
) -> dict[str, Any]:
    """Test and first-fit validation figures (can_advance) for seeds 7-9."""
    data = with_features(variant.features, export, prepared, params)
    runs = [run(variant, data, configured(variant, params, seed)) for seed in SEEDS]
    return {"seeds": list(SEEDS), "test": [r[0] for r in runs], "valid": [r[1] for r in runs]}


def run(
    variant: Variant, data: train.TrainingData, params: Params
) -> tuple[dict[str, float], dict[str, float]]:
    """Fit once; test figures of the product's model, validation figures of its first fit."""
    recorded: list[tuple[Any, np.ndarray, np.ndarray]] = []
    calibrators = estimators.CalibratedLGBM._fit_calibrators
    booster = train._booster
    columns = train.feature_columns

    def record(self: Any, raw: np.ndarray, y: np.ndarray) -> list[Any]:
        recorded.append((self, raw, y))
        return calibrators(self, raw, y)

    def with_options(*args: Any) -> estimators.CalibratedLGBM:
        model = booster(*args)
        if args[3] != "inflection" or not variant.lightgbm:
            return model
        return _WithOptions(**model.get_params()).set_extra(variant.lightgbm)

    def chosen(vocabulary: Any, config: Any) -> list[str]:
        names = columns(vocabulary, config)
        if variant.features in DROPS:
            return [c for c in names if not DROPS[variant.features](c)]
        return names + {"novelty": NOVELTY, "stage": STAGE}.get(variant.features or "", [])

    estimators.CalibratedLGBM._fit_calibrators = record  # type: ignore[method-assign]
    train._booster = with_options
    train.feature_columns = chosen
    try:
        metrics = train.fit(data, params).metrics
    finally:
        estimators.CalibratedLGBM._fit_calibrators = calibrators  # type: ignore[method-assign]
        train._booster = booster
        train.feature_columns = columns
    keys = ("roc_auc", "brier", "ece")
    test = {k: metrics[f"inflection.can_advance.{k}"] for k in keys}
    # The inflection model is fitted last; its calibration map is the first fit's.
    model, raw, y = recorded[-1]
    valid = inflection_metrics(y, model.calibrate(raw)[:, 1])
    return test, {k: valid[k] for k in keys}


class _WithOptions(estimators.CalibratedLGBM):
    """The inflection booster with LightGBM options stageml does not expose."""

    def set_extra(self, extra: dict[str, Any]) -> _WithOptions:
        self.extra_ = extra
        return self

    def lgb_params(self) -> dict[str, Any]:
        return {**super().lgb_params(), **self.extra_}


def with_features(
    name: str | None, export: Any, prepared: train.TrainingData, params: Params
) -> train.TrainingData:
    """Snapshots with prototype feature columns added or changed (strictly before as_of)."""
    if name not in ("novelty", "stage", "cap_durations"):
        return prepared
    snaps = prepared.snapshots.copy()
    keys = snaps[["buyer_id", "as_of"]].astype({"buyer_id": str}).assign(_row=np.arange(len(snaps)))
    events = export.interactions[["buyer_id", "occurred_at", "activity"]].astype({"buyer_id": str})
    events = events.sort_values(["buyer_id", "occurred_at", "activity"], kind="stable")
    events["seq"] = events.groupby("buyer_id").cumcount() + 1
    if name == "cap_durations":
        cap = max(params.features.windows) / pd.Timedelta(days=1)
        for column in [c for c in snaps.columns if c.startswith(choices.ELAPSED_PREFIXES)]:
            snaps[column] = snaps[column].clip(upper=cap)
    elif name == "novelty":
        # The buyer's latest first-of-its-kind activity strictly before t.
        first = events[~events.duplicated(["buyer_id", "activity"])]
        found = _last_before(keys, first.rename(columns={"occurred_at": "at"}), "at")
        snaps["days_since_new_activity"] = _days(found["as_of"] - found["at"])
        snaps["n_since_new_activity"] = snaps["n_all"].to_numpy() - found["seq"].to_numpy()
    else:
        # The recorded stage strictly before t, when the buyer entered it, events since.
        rank = {s: i for i, s in enumerate(params.stages)}
        history = export.stage_history[["buyer_id", "stage", "entered_at"]].astype(
            {"buyer_id": str}
        )
        history = history.assign(rank=history["stage"].map(rank)).rename(
            columns={"entered_at": "at"}
        )
        found = _last_before(keys, history, "at")
        entered = found.dropna(subset=["at"])[["buyer_id", "at", "_row"]].sort_values("at")
        # Stage changes coincide with an interaction: count events up to and at the entry.
        seq = pd.merge_asof(
            entered,
            events.sort_values("occurred_at"),
            left_on="at",
            right_on="occurred_at",
            by="buyer_id",
        ).set_index("_row")["seq"]
        snaps["stage_so_far"] = found["rank"].to_numpy(float)
        snaps["days_in_stage"] = _days(found["as_of"] - found["at"])
        snaps["n_since_stage"] = (
            snaps["n_all"].to_numpy() - seq.reindex(range(len(snaps))).to_numpy()
        )
    return train.TrainingData(
        snapshots=snaps,
        vocabulary=prepared.vocabulary,
        split=prepared.split,
        description=prepared.description,
    )


def _days(delta: pd.Series) -> np.ndarray:
    return np.asarray(delta / pd.Timedelta(days=1), dtype=float)


def _last_before(keys: pd.DataFrame, table: pd.DataFrame, at: str) -> pd.DataFrame:
    """Per key row (in order), the table's latest row with ``at`` strictly before as_of."""
    found = pd.merge_asof(
        keys.sort_values("as_of"),
        table.sort_values(at),
        left_on="as_of",
        right_on=at,
        by="buyer_id",
        allow_exact_matches=False,
    )
    return found.sort_values("_row").reset_index(drop=True)


def summary(rows: dict[str, Any]) -> str:
    real_valid = np.mean([np.mean([r["roc_auc"] for r in rows[k]["valid"]]) for k in KINDS])
    every = np.mean([np.mean([r["roc_auc"] for r in rows[k]["valid"]]) for k in rows])
    tested = np.mean([np.mean([r["roc_auc"] for r in rows[k]["test"]]) for k in rows])
    return (
        f"validation ROC-AUC mean {real_valid:.4f} (with simulated {every:.4f}); "
        f"(pseudo-)test ROC-AUC mean over {len(rows)} data sets {tested:.4f}"
    )


def nested_table(results: dict[str, Any]) -> str:
    """Pseudo-test (the validation period) ROC-AUC, Brier, ECE, can_advance, seeds 7-9."""
    kinds = [k for k in (*KINDS, "simulated", "second") if all(k in r for r in results.values())]
    columns = ["variant", "mean ROC-AUC", "mean Brier rank"]
    columns += [f"{k} ROC-AUC / Brier / ECE" for k in kinds]
    means = {
        name: {
            k: {m: np.mean([r[m] for r in rows[k]["test"]]) for m in ("roc_auc", "brier", "ece")}
            for k in kinds
        }
        for name, rows in results.items()
    }
    # Brier is on each data set's own scale: rank the variants per data set, then average.
    ranks = {name: [] for name in results}
    for k in kinds:
        order = sorted(results, key=lambda n: means[n][k]["brier"])
        for i, name in enumerate(order):
            ranks[name].append(i + 1)
    lines = [
        [
            name,
            f"{np.mean([means[name][k]['roc_auc'] for k in kinds]):.4f}",
            f"{np.mean(ranks[name]):.2f}",
            *(
                f"{means[name][k]['roc_auc']:.3f} / {means[name][k]['brier']:.4f} / "
                f"{means[name][k]['ece']:.3f}"
                for k in kinds
            ),
        ]
        for name in results
    ]
    return markdown_table(columns, lines, numeric=range(1, len(columns)))


def table(results: dict[str, Any]) -> str:
    kinds = (*KINDS, "simulated")
    columns = ["variant", "valid ROC-AUC, real (with simulated)"]
    columns += [f"{k} test (seed 7)" for k in kinds]
    lines = []
    for name, rows in results.items():
        means = [np.mean([r["roc_auc"] for r in rows[k]["valid"]]) for k in kinds]
        cells = [
            f"{t['roc_auc']:.3f} / {t['brier']:.4f} / {t['ece']:.3f}"
            for t in (rows[k]["test"][0] for k in kinds)
        ]
        lines.append([name, f"{np.mean(means[:3]):.4f} ({np.mean(means):.4f})", *cells])
    return markdown_table(columns, lines, numeric=range(1, len(columns)))


if __name__ == "__main__":
    raise SystemExit(main())
