"""The ``stageml`` command: a thin layer that parses arguments and calls the library.

Every command turns a :class:`~stageml.errors.StageMLError` into a one-paragraph message
on stderr and exit code 2, so scheduled jobs fail loudly with the fix in their log.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from stageml.errors import StageMLError

if TYPE_CHECKING:
    from stageml.config import Params

app = typer.Typer(
    name="stageml",
    help="Buying Stage and inflection likelihood for every buyer in a CRM export.",
    no_args_is_help=True,
    add_completion=False,
)
# Logs of scheduled jobs are not terminals: give tables room instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 132
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])

ParamsOption = Annotated[
    Path | None, typer.Option("--params", help="params.yaml to read (default: built-in defaults).")
]
DataParamsOption = Annotated[
    Path | None,
    typer.Option(
        "--params",
        help="params.yaml to read (default: <DATA>/params.yaml if present, as 'stageml import' "
        "writes, else built-in defaults).",
    ),
]
ModelOption = Annotated[str, typer.Option("--model", help="MLflow model URI.")]
DataOption = Annotated[Path, typer.Option("--data", help="Folder holding the CRM export.")]
TrackingOption = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here).",
    ),
]


def friendly_errors(func: F) -> F:
    """Exit 2 with the error's own message instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except StageMLError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


def _data_params(params: Path | None, data: Path) -> Params:
    """Params for a command reading ``data``: ``--params``, else the export's own params.yaml.

    ``stageml import`` writes the export's taxonomy and horizon beside it; reading the
    defaults instead would reject its stage names. The choice is printed, never silent.
    """
    from stageml.config import load_params

    if params is None and (data / "params.yaml").is_file():
        params = data / "params.yaml"
        err_console.print(
            f"[dim]note:[/] using {params} (found beside the export; --params overrides it)",
            highlight=False,
            soft_wrap=True,
        )
    return load_params(params)


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

    settings = _data_params(params, data)
    export = load_export(data, stages=settings.recorded_stages)
    console.print(summary_table(export))
    for warning in export.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    written = write_rejects(export, rejects if rejects is not None else data / "_rejects.csv")
    console.print(f"{len(export.rejects):,} rejected rows written to {written}", highlight=False)


def _load_checked(data: Path, stages: tuple[str, ...], require_stage_history: bool = False) -> Any:
    """Validate the export first (every command does), reporting rejected rows."""
    from stageml.data.validate import load_export, write_rejects

    export = load_export(data, stages=stages, require_stage_history=require_stage_history)
    for warning in export.warnings:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    if len(export.rejects):
        written = write_rejects(export, data / "_rejects.csv")
        err_console.print(
            f"[yellow]{len(export.rejects):,} rows rejected[/] (reasons in {written})",
            highlight=False,
        )
    return export


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

    settings = _data_params(params, data)
    export = _load_checked(data, settings.recorded_stages)
    # Fitted on the rows before the last as-of instant: later rows never change the columns.
    last = max(t.tz_convert(None) if t.tzinfo else t for t in map(pd.Timestamp, as_of))
    vocabulary = fit_vocabulary(export.interactions, export.buyers, settings.features, before=last)
    with _progress("features") as advance:
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


@app.command("train")
@friendly_errors
def train_command(
    data: DataOption,
    params: DataParamsOption = None,
    tracking_uri: TrackingOption = None,
    experiment: Annotated[
        str, typer.Option("--experiment", help="MLflow experiment name.")
    ] = "stageml",
    metrics_out: Annotated[
        Path | None, typer.Option("--metrics-out", help="Also write the metrics as JSON here.")
    ] = None,
    report_out: Annotated[
        Path | None, typer.Option("--report-out", help="Also write the HTML model report here.")
    ] = None,
) -> None:
    """Backtest, calibrate, log to MLflow and register the stage + inflection model."""
    from stageml.data.io import write_json
    from stageml.models.train import level_note, train
    from stageml.tracking.runs import log_training, resolve_tracking_uri
    from stageml.tracking.tables import metrics_table

    settings = _data_params(params, data)
    export = _load_checked(data, settings.recorded_stages, require_stage_history=True)
    result = train(export, settings, progress=lambda msg: err_console.print(f"[dim]{msg}[/]"))
    uri = resolve_tracking_uri(tracking_uri)
    registered = log_training(result, export, tracking_uri=uri, experiment=experiment)
    console.print(metrics_table(result.metrics, settings.stages))
    rate = result.data_description["stage_change_coincidence_rate"]
    if rate > 0.5:
        err_console.print(
            f"[yellow]note:[/] {rate:.0%} of recorded stage changes happen at the instant of "
            "one of the buyer's own interactions: the current stage is readable from the history, "
            "so judge this model by inflection.can_advance.* rather than the stage metrics.",
            highlight=False,
        )
    drift = level_note(result.data_description, result.metrics)
    if drift:
        err_console.print(f"[yellow]note:[/] {drift}", highlight=False)
    if metrics_out is not None:
        write_json({"metrics": result.metrics, "data": result.data_description}, metrics_out)
    if report_out is not None:
        from stageml.data.io import atomic_path

        with atomic_path(report_out) as tmp:
            tmp.write_text(registered.report_html)
    console.print(
        f"run {registered.run_id}: registered {registered.model_uri} as "
        f"[bold]{registered.alias}[/] ({registered.comparison['reason']}); tracking at {uri}",
        highlight=False,
    )


@app.command("promote")
@friendly_errors
def promote_command(
    version: Annotated[int, typer.Option("--version", help="Registered version to make champion.")],
    tracking_uri: TrackingOption = None,
    params: ParamsOption = None,
) -> None:
    """Give the champion alias to a version by hand."""
    from stageml.config import load_params
    from stageml.tracking.runs import promote, resolve_tracking_uri

    name = load_params(params).registry.name
    promote(version, tracking_uri=resolve_tracking_uri(tracking_uri), name=name)
    console.print(f"{name} version {version} is now the champion")


@app.command("rollback")
@friendly_errors
def rollback_command(tracking_uri: TrackingOption = None, params: ParamsOption = None) -> None:
    """Return the champion alias to the previous champion."""
    from stageml.config import load_params
    from stageml.tracking.runs import resolve_tracking_uri, rollback

    name = load_params(params).registry.name
    version = rollback(tracking_uri=resolve_tracking_uri(tracking_uri), name=name)
    console.print(f"{name} champion rolled back to version {version}")


@app.command("score")
@friendly_errors
def score_command(
    data: DataOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Score as of this instant (UTC if naive).")],
    out: Annotated[Path, typer.Option("--out", help="Scores file, .parquet or .csv.")],
    model: ModelOption = "models:/stageml@champion",
    engine: Annotated[str, typer.Option("--engine", help="local or spark.")] = "local",
    reasons: Annotated[
        int, typer.Option("--reasons", min=0, help="Reason codes per direction (0: none).")
    ] = 0,
    previous: Annotated[
        Path | None,
        typer.Option("--previous", help="Previous scores, for stage_change and inflection_trend."),
    ] = None,
    master: Annotated[
        str, typer.Option("--master", help="Spark master (spark engine).")
    ] = "local[*]",
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker processes (local engine; default: cores)."),
    ] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """Score every buyer of an export; write scores, rejects and a JSON run summary."""
    from stageml.errors import ConfigError
    from stageml.tracking.runs import resolve_model, resolve_tracking_uri

    bundle, version = resolve_model(model, resolve_tracking_uri(tracking_uri))
    if engine == "local":
        from stageml.scoring.local import score_local

        with _progress("scoring partitions") as advance:
            summary = score_local(
                data,
                bundle,
                as_of,
                out=out,
                reasons=reasons,
                previous=previous,
                model_uri=model,
                model_version=version,
                workers=workers,
                progress=advance,
            )
    elif engine == "spark":
        from stageml.scoring.spark import score_spark

        summary = score_spark(
            data,
            bundle,
            as_of,
            out=out,
            reasons=reasons,
            previous=previous,
            model_uri=model,
            model_version=version,
            master=master,
        )
    else:
        raise ConfigError(f"unknown engine {engine!r}. Fix: use --engine local or --engine spark")
    for item in summary["drifted_features"]:
        err_console.print(
            f"[yellow]drift:[/] {item['feature']} PSI {item['psi']:.2f}", highlight=False
        )
    console.print(
        f"scored {summary['scored_buyers']:,} of {summary['input_buyers']:,} buyers "
        f"({summary['rejected_buyers']:,} rejected with reasons) in {summary['seconds']:.1f} s "
        f"with {model} (version {version or '-'}): {out}",
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


@app.command("explain")
@friendly_errors
def explain_command(
    data: DataOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Explain as of this instant.")],
    buyer: Annotated[str, typer.Option("--buyer", help="The buyer_id to explain.")],
    model: ModelOption = "models:/stageml@champion",
    k: Annotated[int, typer.Option("--k", min=1, help="Factors per direction.")] = 3,
    waterfall: Annotated[
        Path | None,
        typer.Option("--waterfall", help="Also write a waterfall PNG of the stage logit here."),
    ] = None,
    touches: Annotated[
        bool, typer.Option("--touches/--no-touches", help="Also show the best next touches.")
    ] = True,
    trial: Annotated[
        Path | None,
        typer.Option("--trial", help="Randomised trial log for the touch lifts (next-touch)."),
    ] = None,
    tracking_uri: TrackingOption = None,
) -> None:
    """One buyer: stage probabilities, inflection likelihood, the reasons, the next touches."""
    from rich.table import Table

    from stageml.durations import format_duration
    from stageml.errors import ModelError
    from stageml.explain.reasons import reason_table
    from stageml.tracking.runs import resolve_model, resolve_tracking_uri

    bundle, version = resolve_model(model, resolve_tracking_uri(tracking_uri))
    export = _load_checked(data, bundle.recorded_stages)
    history = export.interactions[export.interactions["buyer_id"] == buyer]
    features = bundle.features(history, [as_of], export.buyers, stage_history=export.stage_history)
    if features.empty:
        raise ModelError(
            f"buyer {buyer!r} has no interaction before {as_of} in {data}. Fix: check the id "
            "or choose a later --as-of"
        )
    scores = bundle.predict_features(features).iloc[0]
    probs = Table(title=f"buyer {buyer} as of {as_of} (model {model}, version {version or '-'})")
    for stage in bundle.stages:
        probs.add_column(stage, justify="right")
    probs.add_row(*(f"{scores[f'p_{s}']:.1%}" for s in bundle.stages))
    console.print(probs)
    nxt = scores["next_stage"]
    console.print(
        f"predicted stage [bold]{scores['stage']}[/]; likelihood of moving on"
        f"{'' if pd_isna(nxt) else f' (to {nxt} or beyond)'} within "
        f"{format_duration(bundle.params.labels.horizon)}: "
        f"[bold]{scores['inflection_probability']:.1%}[/]"
        + (
            f"; of leaving ({', '.join(bundle.params.exits)}): "
            f"[bold]{scores['exit_probability']:.1%}[/]"
            if "exit_probability" in scores
            else ""
        ),
        highlight=False,
    )
    reasons = reason_table(bundle, features, k=k)
    for task, label in (
        ("stage", f"why {scores['stage']}"),
        ("inflection", "why this likelihood"),
        ("exit", "why this risk of leaving"),
    ):
        rows = reasons[reasons["model"] == task]
        if rows.empty:
            continue
        table = Table(title=label, show_header=False)
        for _, row in rows.iterrows():
            colour = "green" if row["direction"] == "up" else "red"
            table.add_row(
                f"[{colour}]{'▲' if row['direction'] == 'up' else '▼'}[/]", str(row["text"])
            )
        console.print(table)
    if touches:
        from stageml.scoring.local import normalise_as_of
        from stageml.tactics.next_touch import next_touches, read_trial

        config = bundle.params.touches
        result = next_touches(
            bundle,
            export,
            normalise_as_of(as_of),
            config,
            k=k,
            trial=None if trial is None else read_trial(trial, config.activities),
            buyer_ids=[buyer],
            seed=bundle.params.seed,
        )
        if result.touches.empty:
            console.print(f"next touches: none ({result.rejects['reason'].iloc[0]})")
        else:
            _print_touches(result.touches, 1)
            console.print(f"(lifts by {result.method}; README, 'Next touches')", highlight=False)
    if waterfall is not None:
        from stageml.data.io import atomic_path
        from stageml.explain.plots import waterfall_figure

        fig = waterfall_figure(bundle, features.iloc[[0]], task="stage")
        with atomic_path(waterfall) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        console.print(f"waterfall written to {waterfall}")


@app.command("next-touch")
@friendly_errors
def next_touch_command(
    data: DataOption,
    as_of: Annotated[str, typer.Option("--as-of", help="Recommend as of this instant.")],
    out: Annotated[Path, typer.Option("--out", help="Next touches file, .parquet or .csv.")],
    k: Annotated[
        int | None, typer.Option("--k", min=1, help="Touches per buyer (default: touches.k).")
    ] = None,
    trial: Annotated[
        Path | None,
        typer.Option("--trial", help="Randomised trial log (buyer_id, assigned_at, touch)."),
    ] = None,
    show: Annotated[int, typer.Option("--show", min=0, help="Buyers to print.")] = 10,
    model: ModelOption = "models:/stageml@champion",
    tracking_uri: TrackingOption = None,
) -> None:
    """Per buyer, the seller touches that most raise the chance of moving on, with lifts."""
    from stageml.data.io import atomic_path, write_table
    from stageml.scoring.local import normalise_as_of
    from stageml.tactics.next_touch import next_touches, read_trial
    from stageml.tactics.plots import lift_heatmap
    from stageml.tracking.runs import log_next_touches, resolve_model, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    bundle, _ = resolve_model(model, uri)
    config = bundle.params.touches
    export = _load_checked(data, bundle.recorded_stages)
    log = None if trial is None else read_trial(trial, config.activities)
    instant = normalise_as_of(as_of)
    result = next_touches(
        bundle, export, instant, config, k=k or config.k, trial=log, seed=bundle.params.seed
    )
    write_table(result.touches, out)
    stem = out.with_suffix("")
    rejects = write_table(result.rejects, stem.with_name(stem.name + "_rejects.csv"))
    figure = lift_heatmap(
        result.lift_table, title=f"mean lift by touch, as of {as_of} ({result.method})"
    )
    with atomic_path(stem.with_name(stem.name + "_lift.png")) as tmp:
        figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    run_id = log_next_touches(
        result.lift_table, figure, tracking_uri=uri, method=result.method, as_of=instant
    )
    listed = result.touches["buyer_id"].nunique()
    console.print(
        f"next touches for {listed:,} buyers ({len(result.rejects):,} not listed, reasons in "
        f"{rejects}) by {result.method}"
        + (f" fitted on {result.trial_rows:,} trial rows" if result.trial_rows else "")
        + f": {out}; lift heat map beside it and in MLflow run {run_id}",
        highlight=False,
    )
    if result.method == "counterfactual":
        err_console.print(
            "[yellow]caution:[/] without a randomised trial (--trial) these lifts come from "
            "the model's reading of past seller choices, not from an experiment (README, "
            "'Next touches')",
            highlight=False,
        )
    _print_touches(result.touches, show)


def _print_touches(touches: Any, n: int) -> None:
    """Print the ``n`` buyers whose best touch has the highest estimated lift."""
    from rich.table import Table

    if n == 0 or touches.empty:
        return
    best = touches[touches["rank"] == 1].nlargest(n, "lift")["buyer_id"]
    order = {buyer: i for i, buyer in enumerate(best)}
    shown = touches[touches["buyer_id"].isin(order)]
    shown = shown.assign(_order=shown["buyer_id"].map(order)).sort_values(["_order", "rank"])
    table = Table(title=f"next touches: the {len(best)} buyer(s) a touch helps most")
    for column in ("buyer", "stage", "likelihood", "touch", "lift", "interval"):
        table.add_column(column)
    for _, row in shown.iterrows():
        first = row["rank"] == 1
        interval = (
            "-"
            if pd_isna(row["lift_low"])
            else f"{row['lift_low']:+.1%} .. {row['lift_high']:+.1%}"
        )
        table.add_row(
            str(row["buyer_id"]) if first else "",
            str(row["stage"]) if first else "",
            f"{row['inflection_probability']:.1%}" if first else "",
            str(row["touch"]),
            f"{row['lift']:+.1%}",
            interval,
        )
    console.print(table)


@app.command("top")
@friendly_errors
def top_command(
    scores: Annotated[
        Path,
        typer.Option("--scores", exists=True, dir_okay=False, help="Output of 'stageml score'."),
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="How many buyers.")] = 10,
) -> None:
    """Show the buyers most likely to move to a later stage soon, with their reasons.

    Where the model has exits, each buyer's probability of leaving (lost, disqualified)
    within the same horizon is shown beside it.
    """
    from rich.table import Table

    from stageml.data.io import read_table

    frame = read_table(scores)
    # Ties in probability (flat calibration at the top) are ordered by the raw score;
    # score files written before that column existed sort by probability alone.
    order = [c for c in ("inflection_probability", "inflection_score") if c in frame.columns]
    frame = frame.sort_values(order, ascending=False, kind="stable").head(n)
    reason_cols = [c for c in frame.columns if c.startswith("inflection_up_")]
    exits = "exit_probability" in frame.columns
    table = Table(title=f"top {n} buyers most likely to inflect ({scores})")
    for column in ("buyer", "stage", "next", "likelihood", *(["exit"] if exits else []), "why"):
        table.add_column(column, overflow="fold")
    for _, row in frame.iterrows():
        why = "; ".join(str(row[c]) for c in reason_cols if not pd_isna(row[c])) or "-"
        table.add_row(
            str(row["buyer_id"]),
            str(row["stage"]),
            str(row["next_stage"]),
            f"{row['inflection_probability']:.1%}",
            *([f"{row['exit_probability']:.1%}"] if exits else []),
            why,
        )
    console.print(table)


def pd_isna(value: Any) -> bool:
    """Missing-value test for scalars read back from tables."""
    import pandas as pd

    return bool(pd.isna(value))


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Show a rich progress bar driven by (done, total) callbacks from long library calls."""
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def main() -> None:
    """Console-script entry point."""
    app()
