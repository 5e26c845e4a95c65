"""Do the top reasons vary across buyers? The demo's top 100, by family and by single column.

Simulates the demo's export (``make demo``: 5,000 buyers, seed 7), trains with the default
params, scores every buyer at the demo's as-of instant and takes the 100 most likely to
advance (by probability, then score, as ``stageml top`` orders them). For each, the top-3
inflection reasons pushing up are ranked two ways:

* by feature family (``stageml.explain.reasons.reason_table``, the product);
* by single column (the TreeSHAP values before they are summed into families).

Prints the share of distinct top-3 reason sets among the 100, how many distinct reasons
appear, and the top 10 buyers' reasons in words.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/reasons.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import markdown_table  # noqa: E402

from stageml.config import load_params  # noqa: E402
from stageml.data.simulate import simulate_to_folder  # noqa: E402
from stageml.data.validate import load_export  # noqa: E402
from stageml.explain.contributions import contributions  # noqa: E402
from stageml.explain.reasons import reason_table  # noqa: E402
from stageml.models.train import train  # noqa: E402

CACHE = HERE / ".cache" / "reasons"
RESULTS = HERE / "results" / "reasons.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--buyers", type=int, default=5000)
    parser.add_argument("--as-of", default="2026-06-29")
    parser.add_argument("--top", type=int, default=100)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    shutil.rmtree(CACHE, ignore_errors=True)
    params = load_params(HERE.parent / "params.yaml")
    simulate_to_folder(args.buyers, seed=7, out=CACHE, stages=params.stages, exits=params.exits)
    export = load_export(CACHE, stages=params.recorded_stages)
    model = train(export, params).model
    features = model.features(
        export.interactions, [args.as_of], export.buyers, stage_history=export.stage_history
    )
    scores = model.predict_features(features)
    top = scores.sort_values(
        ["inflection_probability", "inflection_score"], ascending=False, kind="stable"
    ).index[: args.top]
    rows = features.iloc[top].reset_index(drop=True)
    table = reason_table(model, rows, k=3, workers=1)
    up = table[(table["model"] == "inflection") & (table["direction"] == "up")]
    by_family = up.groupby("row")["feature"].apply(frozenset)
    single = contributions(model.inflection_model, rows[model.feature_names], workers=1)
    names = np.asarray(model.feature_names, dtype=object)
    by_column = [
        frozenset(names[j] for j in np.argsort(-r)[:3] if r[j] > 0) for r in single[:, 0, :-1]
    ]
    summary = {
        "buyers": args.buyers,
        "top": len(rows),
        "family_sets_distinct_share": by_family.nunique() / len(by_family),
        "family_reasons_distinct": len({f for s in by_family for f in s}),
        "column_sets_distinct_share": len(set(by_column)) / len(by_column),
        "column_reasons_distinct": len({f for s in by_column for f in s}),
        "most_common_family_sets": [
            [sorted(s), int(n)] for s, n in by_family.value_counts().head(5).items()
        ],
        "top10": [
            up[up["row"] == i].sort_values("rank")["text"].tolist()
            for i in range(min(10, len(rows)))
        ],
    }
    print(
        markdown_table(
            ["reasons ranked by", "distinct top-3 sets among the top 100", "distinct reasons"],
            [
                [
                    "feature family (product)",
                    f"{summary['family_sets_distinct_share']:.0%}",
                    summary["family_reasons_distinct"],
                ],
                [
                    "single column (before)",
                    f"{summary['column_sets_distinct_share']:.0%}",
                    summary["column_reasons_distinct"],
                ],
            ],
        )
    )
    for i, texts in enumerate(summary["top10"], start=1):
        print(f"{i}. " + "; ".join(texts))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
