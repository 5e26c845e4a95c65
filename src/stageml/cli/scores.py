"""Commands that score and explain buyers: score, explain, next-touch, top."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stageml.cli.common import (
    DataOption,
    ModelOption,
    TrackingOption,
    app,
    console,
    err_console,
    friendly_errors,
    load_checked,
    pd_isna,
    progress,
)


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
    # What both engines take; each adds its own (local: workers, progress; Spark: master).
    common: dict[str, Any] = {
        "out": out,
        "reasons": reasons,
        "previous": previous,
        "model_uri": model,
        "model_version": version,
    }
    if engine == "local":
        from stageml.scoring.local import score_local

        with progress("scoring partitions") as advance:
            summary = score_local(data, bundle, as_of, **common, workers=workers, progress=advance)
    elif engine == "spark":
        from stageml.scoring.spark import score_spark

        summary = score_spark(data, bundle, as_of, **common, master=master)
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
    export = load_checked(data, bundle.recorded_stages)
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
    from stageml.tactics.next_touch import COUNTERFACTUAL_CAUTION, next_touches, read_trial
    from stageml.tactics.plots import lift_heatmap
    from stageml.tracking.runs import log_next_touches, resolve_model, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    bundle, _ = resolve_model(model, uri)
    config = bundle.params.touches
    export = load_checked(data, bundle.recorded_stages)
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
        err_console.print(f"[yellow]caution:[/] {COUNTERFACTUAL_CAUTION}", highlight=False)
    _print_touches(result.touches, show)


def _print_touches(touches: Any, n: int) -> None:
    """Print the ``n`` buyers whose best touch has the highest estimated lift."""
    from rich.table import Table

    if n == 0 or touches.empty:
        return
    # With intervals, the buyers a touch surely helps: ranked by the lower bound, so the
    # noisiest estimates (the widest intervals) do not head the list.
    by = "lift" if touches["lift_low"].isna().all() else "lift_low"
    best = touches[touches["rank"] == 1].nlargest(n, by)["buyer_id"]
    order = {buyer: i for i, buyer in enumerate(best)}
    shown = touches[touches["buyer_id"].isin(order)]
    shown = shown.assign(_order=shown["buyer_id"].map(order)).sort_values(["_order", "rank"])
    table = Table(
        title=f"next touches: the {len(best)} buyer(s) a touch helps most"
        + (" (by the interval's lower bound)" if by == "lift_low" else "")
    )
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
