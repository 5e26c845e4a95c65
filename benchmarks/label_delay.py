"""Label delay: does reading the recorded stage later help the inflection model find TRUE moves?

CRMs record stage changes late (the simulator: 2.5 days on average in the first world, 6 in
the second), so the recorded label of an as-of instant can be off. ``labels.label_delay``
reads the recorded stage that much later. Changing it changes the labels themselves, so
the only fair judge is the simulator's truth, which the product never reads: for each
delay, stageml is trained with the defaults, and its probabilities on the test period's
snapshot rows are scored against the **true** inflection (a later true stage entered in
``(t, t + horizon]``), on the rows whose true stage at ``t`` is not the last and whose
horizon (plus the longest delay) ends inside the data. Every delay is scored on the same rows.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/label_delay.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import markdown_table  # noqa: E402

from stageml.config import Params  # noqa: E402
from stageml.data.second_world import STAGES, simulate_second_world  # noqa: E402
from stageml.data.simulate import SimulatedExport, simulate, write_export  # noqa: E402
from stageml.data.validate import load_export  # noqa: E402
from stageml.models.metrics import expected_calibration_error  # noqa: E402
from stageml.models.train import fit, prepare_training  # noqa: E402

CACHE = HERE / ".cache" / "label_delay"
RESULTS = HERE / "results" / "label_delay.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buyers", type=int, default=3000)
    parser.add_argument("--delays", nargs="+", default=["0d", "3d", "7d"])
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    longest = max(pd.Timedelta(d) for d in args.delays)
    results: dict[str, Any] = {}
    lines = []
    for world in ("simulated", "second"):
        made = (
            simulate(args.buyers, seed=11)
            if world == "simulated"
            else simulate_second_world(args.buyers, seed=11)
        )
        out = CACHE / world
        shutil.rmtree(out, ignore_errors=True)
        write_export(made, out)
        base = Params() if world == "simulated" else Params(stages=STAGES)
        export = load_export(out, stages=base.stages)
        for delay in args.delays:
            labels = base.labels.model_copy(update={"label_delay": pd.Timedelta(delay)})
            params = base.model_copy(update={"labels": labels})
            trained = fit(prepare_training(export, params), params)
            rows = trained.test_frame
            truth = true_inflection(made, rows, params, longest)
            keep = truth.notna().to_numpy()
            p = trained.model.predict_features(rows)["inflection_probability"].to_numpy(float)
            y = truth[keep].astype(int).to_numpy()
            scored = {
                "roc_auc": float(roc_auc_score(y, p[keep])),
                "pr_auc": float(average_precision_score(y, p[keep])),
                "ece": expected_calibration_error(y, p[keep]),
                "rows": int(keep.sum()),
                "recorded_roc_auc": trained.metrics["inflection.can_advance.roc_auc"],
            }
            results.setdefault(world, {})[delay] = scored
            print(world, delay, scored, file=sys.stderr, flush=True)
            lines.append(
                [
                    world,
                    delay,
                    f"{scored['roc_auc']:.4f}",
                    f"{scored['pr_auc']:.4f}",
                    f"{scored['ece']:.4f}",
                    f"{scored['rows']:,}",
                    f"{scored['recorded_roc_auc']:.4f}",
                ]
            )
    columns = ["world", "label delay", "true ROC-AUC", "true PR-AUC", "true ECE", "rows"]
    print(markdown_table([*columns, "recorded ROC-AUC"], lines, numeric=range(2, 7)))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def true_inflection(
    made: SimulatedExport, rows: pd.DataFrame, params: Params, longest: pd.Timedelta
) -> pd.Series:
    """1/0 per row: a later TRUE stage entered in (t, t + horizon]; NA where not judged."""
    rank = {s: i for i, s in enumerate(params.stages)}
    truth = made.truth[["buyer_id", "stage", "entered_at"]].assign(
        rank=made.truth["stage"].map(rank), buyer_id=made.truth["buyer_id"].astype(str)
    )
    keys = rows[["buyer_id", "as_of"]].astype({"buyer_id": str}).reset_index(drop=True)
    keys["_row"] = np.arange(len(keys))
    now = pd.merge_asof(
        keys.sort_values("as_of"),
        truth.sort_values("entered_at"),
        left_on="as_of",
        right_on="entered_at",
        by="buyer_id",
    ).sort_values("_row")
    current = now["rank"].to_numpy(float)
    horizon = params.labels.horizon
    joined = keys.merge(truth, on="buyer_id")
    later = joined[
        (joined["entered_at"] > joined["as_of"])
        & (joined["entered_at"] <= joined["as_of"] + horizon)
    ]
    best = later.groupby("_row")["rank"].max().reindex(keys["_row"]).to_numpy(float)
    moved = np.nan_to_num(best, nan=-1) > current
    end = made.interactions["occurred_at"].max()
    judged = (
        ~np.isnan(current)
        & (current < len(params.stages) - 1)
        & (keys["as_of"] + horizon + longest <= end).to_numpy()
    )
    return pd.Series(np.where(judged, moved.astype(float), np.nan))


if __name__ == "__main__":
    raise SystemExit(main())
