"""Benchmark a big messy CSV: one bad row in the middle of a ~2 GB interactions file.

Run ``OMP_WAIT_POLICY=PASSIVE python benchmarks/messy.py [--gb 2.0] [--quick]``.

The file is a simulated export (20,000 buyers) repeated with fresh buyer ids until it
reaches ``--gb``, written as ';'-separated UTF-8 with a byte-order mark. The same file is
scored twice by the local engine (``stageml score``'s code path: DuckDB streams it into
partitions, each validated and scored), each in a fresh child process: once clean (the
baseline) and once with one bad row in the middle (an unparseable timestamp and an extra
field). Reported: wall time, CPU, peak RSS, the ratio of the two runs, and where the bad
row ended up (the rejects file must name its row with ``unparseable_occurred_at``; every
other buyer is scored). The model is a small one trained on 1,500 simulated buyers at the
start of each run; the files are written under ``benchmarks/.cache/messy/`` and the big
CSVs removed afterwards.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import pandas as pd  # noqa: E402
from _common import emit_result, markdown_table, peak_rss_mb, run_child  # noqa: E402

CACHE = HERE / ".cache" / "messy"
AS_OF = "2026-06-01"
BAD_ROW = "{buyer};not a date;site_visit;web;inbound;stray field\n"


def _write_big(folder: Path, gb: float, *, bad: bool) -> dict[str, int]:
    """Write ``interactions.csv`` of about ``gb`` GB; with ``bad``, one bad row mid-file."""
    from stageml.data.simulate import simulate

    base = simulate(20_000, seed=7).interactions
    base["occurred_at"] = base["occurred_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "interactions.csv"
    copies = max(1, round(gb * 1e9 / len(_renamed(base, 0).encode())))
    rows = bad_row = 0
    with open(path, "w", encoding="utf-8-sig") as handle:
        handle.write(";".join(base.columns) + "\n")
        for copy in range(copies):
            handle.write(_renamed(base, copy))
            rows += len(base)
            if bad and copy == copies // 2:
                handle.write(BAD_ROW.format(buyer=f"BAD-{copy}"))
                bad_row = rows + 1
                rows += 1
    return {"rows": rows, "copies": copies, "bytes": path.stat().st_size, "bad_row": bad_row}


def _renamed(base: pd.DataFrame, copy: int) -> str:
    """One copy of the export as CSV text, with fresh ids (B000001 -> B000001-17)."""
    return base.assign(buyer_id=base["buyer_id"] + f"-{copy}").to_csv(
        sep=";", index=False, header=False
    )


def _model(path: Path) -> None:
    from stageml.config import Params
    from stageml.data.simulate import simulate, write_export
    from stageml.data.validate import load_export
    from stageml.models.train import train

    folder = CACHE / "train"
    write_export(simulate(1500, seed=11), folder)
    fast = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20}
    params = Params.model_validate({"train": {"stage": fast, "inflection": fast}})
    result = train(load_export(folder), params)
    path.write_bytes(pickle.dumps(result.model))


def _child(folder: Path, model_path: Path) -> None:
    from stageml.scoring.local import score_local

    model = pickle.loads(model_path.read_bytes())  # noqa: S301 - our own file
    clock = time.perf_counter()
    out = folder / "scores.parquet"
    summary = score_local(folder, model, AS_OF, out=out, workers=2)
    seconds = time.perf_counter() - clock
    rejects = pd.read_csv(folder / "scores_rejects.csv", dtype={"buyer_id": "string"})
    rows = rejects[rejects["table"] == "interactions"]
    emit_result(
        {
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "input_buyers": summary["input_buyers"],
            "scored_buyers": summary["scored_buyers"],
            "input_rows": summary["input_rows"]["interactions"],
            "row_rejects": rows[["row", "reason"]].values.tolist(),
            "partitions": summary["partitions"],
        }
    )


def _rejects_text(rejects: list[list[object]]) -> str:
    """Rejected interaction rows by reason; the row number where there is one such row."""
    by_reason: dict[str, list[int]] = {}
    for row, reason in rejects:
        by_reason.setdefault(str(reason), []).append(int(float(str(row))))
    parts = [
        f"{reason} x{len(rows):,}" + (f" (row {rows[0]:,})" if len(rows) == 1 else "")
        for reason, rows in by_reason.items()
    ]
    return "rejected rows: " + ("; ".join(parts) or "none")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gb", type=float, default=2.0)
    parser.add_argument("--quick", action="store_true", help="0.05 GB instead")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(Path(args.child[0]), Path(args.child[1]))
        return
    gb = 0.05 if args.quick else args.gb
    # Trained afresh each run: a pickle from an older checkout can name moved modules.
    model_path = CACHE / "model.pkl"
    _model(model_path)
    results = []
    for bad in (False, True):
        folder = CACHE / ("bad" if bad else "clean")
        written = _write_big(folder, gb, bad=bad)
        result = run_child(__file__, ["--child", str(folder), str(model_path)], timeout=3600)
        results.append((bad, written, result))
        (folder / "interactions.csv").unlink()
        print(bad, written, result, flush=True)
    base = results[0][2]
    table = []
    for bad, written, result in results:
        if "error" in result:
            table.append(["one bad row" if bad else "clean", "-", "-", "-", "-", result["error"]])
            continue
        table.append(
            [
                "one bad row mid-file" if bad else "clean (baseline)",
                f"{written['bytes'] / 1e9:.2f}",
                f"{written['rows']:,}",
                f"{result['seconds']:.0f} ({result['seconds'] / base['seconds']:.2f}x)",
                f"{max(result['peak_rss_mb'], result['polled_peak_rss_mb']):,.0f}",
                f"{result['scored_buyers']:,} of {result['input_buyers']:,} buyers scored; "
                + _rejects_text(result["row_rejects"])
                + (f" (the bad row was written as data row {written['bad_row']:,})" if bad else ""),
            ]
        )
    print(
        markdown_table(
            ["file", "GB", "rows", "wall s (vs clean)", "peak RSS MB", "outcome"],
            table,
            numeric=(1, 2, 3, 4),
        )
    )


if __name__ == "__main__":
    main()
