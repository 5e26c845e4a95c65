"""Commands that read or write CRM exports: simulate, validate, features, import."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stageml.cli.common import (
    DataOption,
    DataParamsOption,
    ParamsOption,
    app,
    console,
    data_params,
    err_console,
    friendly_errors,
    load_checked,
    progress,
)


@app.command("simulate")
@friendly_errors
def simulate_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the export into.")],
    buyers: Annotated[int, typer.Option("--buyers", min=1, help="Number of buyers.")] = 10_000,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Random seed (default: seed in params).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    start: Annotated[str, typer.Option("--start", help="First day buyers can enter.")] = (
        "2025-01-01"
    ),
    end: Annotated[str, typer.Option("--end", help="Export instant; all data is before.")] = (
        "2026-06-30"
    ),
    touch_effects: Annotated[
        bool,
        typer.Option("--touch-effects", help="Stage-appropriate touch effects (world.py)."),
    ] = False,
    touch_trial: Annotated[
        float,
        typer.Option(
            "--touch-trial",
            min=0.0,
            max=1.0,
            help="Share of buyers in a randomised touch trial (implies --touch-effects); "
            "writes trial and touch_truth tables.",
        ),
    ] = 0.0,
    params: ParamsOption = None,
    messy: Annotated[
        bool,
        typer.Option(
            "--messy",
            help="Write CSVs carrying the faults real exports carry (README, 'Messy exports').",
        ),
    ] = False,
) -> None:
    """Write a simulated CRM export (with its true stage path) for demos and tests."""
    # Imported here so the command stays one self-contained block of this file.
    from rich.table import Table

    from stageml.config import load_params
    from stageml.data.simulate import simulate_to_folder, summarize_folder
    from stageml.data.world import WorldParams

    settings = load_params(params)
    knobs = WorldParams(
        touch_effects=touch_effects or touch_trial > 0,
        randomised_share=touch_trial,
        trial_horizon_days=settings.labels.horizon.days,
    )
    if messy:
        _write_messy(
            out, buyers, settings.seed if seed is None else seed, settings.stages, start, end
        )
        return
    simulate_to_folder(
        buyers,
        seed=settings.seed if seed is None else seed,
        out=out,
        fmt=fmt,
        stages=settings.stages,
        exits=settings.exits,
        start=start,
        end=end,
        params=knobs,
    )
    summary = summarize_folder(out)
    table = Table(title=f"simulated export in {out}", show_header=False)
    table.add_row("buyers", f"{summary['buyers']:,}")
    table.add_row("interactions", f"{summary['interactions']:,}")
    table.add_row("interactions from", str(summary["first_interaction"]))
    table.add_row("interactions to", str(summary["last_interaction"]))
    for stage in settings.stages:
        table.add_row(f"true stage at end: {stage}", f"{summary['stage_at_end'].get(stage, 0):,}")
    table.add_row("went quiet", f"{summary['quiet_share']:.1%}")
    table.add_row("with recorded history", f"{summary['recorded_share']:.1%}")
    console.print(table)


def _write_messy(
    out: Path, buyers: int, seed: int, stages: tuple[str, ...], start: str, end: str
) -> None:
    """``simulate --messy``: the faulty CSVs, the clean truth, and what was injected."""
    from stageml.data.io import write_table
    from stageml.data.messy import injected_table, write_messy
    from stageml.data.simulate import simulate

    export = simulate(buyers, seed=seed, stages=stages, start=start, end=end)
    result = write_messy(export, out, seed=seed, stages=stages)
    write_table(export.truth, out / "truth.parquet")
    console.print(injected_table(result, title=f"messy export in {out} (CSV)"))


@app.command("validate")
@friendly_errors
def validate_command(
    data: Annotated[Path, typer.Option("--data", help="Folder holding the CRM export.")],
    params: DataParamsOption = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            help="Where to write rejected rows, .csv or .parquet (default: <DATA>/_rejects.csv).",
        ),
    ] = None,
) -> None:
    """Check a CRM export against the data contract; write rejected rows with reasons.

    Exits 0 when rows were only rejected (see the summary and the rejects file), 2 when
    the export breaks the contract (the message names file, column, rows and the fix).
    """
    # Imported here so the command stays one self-contained block of this file.
    from stageml.data.validate import load_export, summary_table, write_rejects

    settings = data_params(params, data)
    export = load_export(data, stages=settings.recorded_stages)
    console.print(summary_table(export))
    for warning in export.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    written = write_rejects(export, rejects if rejects is not None else data / "_rejects.csv")
    console.print(f"{len(export.rejects):,} rejected rows written to {written}", highlight=False)


@app.command("features")
@friendly_errors
def features_command(
    data: DataOption,
    as_of: Annotated[
        list[str], typer.Option("--as-of", help="As-of instant(s); features see only earlier rows.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Output table, .parquet or .csv.")],
    params: DataParamsOption = None,
) -> None:
    """Point-in-time features per buyer and as-of instant (vocabulary fitted on this export)."""
    import pandas as pd

    from stageml.data.io import write_table
    from stageml.features.engine import build_features
    from stageml.features.vocabulary import fit_vocabulary

    settings = data_params(params, data)
    export = load_checked(data, settings.recorded_stages)
    # Fitted on the rows before the last as-of instant: later rows never change the columns.
    last = max(t.tz_convert(None) if t.tzinfo else t for t in map(pd.Timestamp, as_of))
    vocabulary = fit_vocabulary(export.interactions, export.buyers, settings.features, before=last)
    with progress("features") as advance:
        frame = build_features(
            export.interactions,
            as_of,
            vocabulary=vocabulary,
            config=settings.features,
            buyers=export.buyers,
            progress=advance,
        )
    write_table(frame, out)
    console.print(
        f"{len(frame):,} feature rows x {frame.shape[1] - 2} features for "
        f"{frame['buyer_id'].nunique():,} buyers written to {out}",
        highlight=False,
    )


@app.command("import")
@friendly_errors
def import_command(
    kind: Annotated[str, typer.Argument(help="Data set: taobao, olist or maven.")],
    src: Annotated[Path, typer.Option("--src", help="Folder holding the original files.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the export and params into.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or parquet.")] = "csv",
) -> None:
    """Map a real public data set onto the data contract, with its own params.yaml."""
    # Imported here so the command stays one self-contained block of this file.
    from rich.table import Table

    from stageml.data.importers import import_export

    result = import_export(kind, src, out, fmt=fmt)
    table = Table(title=f"{kind} import into {out}")
    for column in ("source file", "input", "accepted", "rejected"):
        table.add_column(column, justify="left" if column == "source file" else "right")
    for source in result.sources:
        table.add_row(
            Path(source.path).name,
            f"{source.input_rows:,}",
            f"{source.accepted_rows:,}",
            f"{source.rejected_rows:,}",
        )
    console.print(table)
    for source in result.sources:
        for reason, count in source.rejected.items():
            console.print(
                f"  rejected {count:,} of {Path(source.path).name}: {reason}", highlight=False
            )
    for name, path in result.tables.items():
        console.print(f"wrote {result.rows[name]:,} {name} rows to {path}", highlight=False)
    console.print(
        f"rejected rows with reasons: {result.rejects}\n"
        f"stage changes at the instant of an interaction: {result.coincidence_rate:.1%} "
        "(near 100%: the current stage is readable from the history; the inflection is "
        f"the open question)\nparams for this data set: {result.params}",
        highlight=False,
    )
