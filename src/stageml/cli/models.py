"""Commands that train and manage registered models: train, promote, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stageml.cli.common import (
    DataOption,
    DataParamsOption,
    ParamsOption,
    TrackingOption,
    app,
    console,
    data_params,
    err_console,
    friendly_errors,
    load_checked,
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
    from stageml.models.description import level_note
    from stageml.models.train import train
    from stageml.tactics.next_touch import export_trial
    from stageml.tracking.runs import log_training, resolve_tracking_uri
    from stageml.tracking.tables import metrics_table

    settings = data_params(params, data)
    export = load_checked(data, settings.recorded_stages, require_stage_history=True)
    result = train(export, settings, progress=lambda msg: err_console.print(f"[dim]{msg}[/]"))
    uri = resolve_tracking_uri(tracking_uri)
    registered = log_training(
        result,
        export,
        tracking_uri=uri,
        experiment=experiment,
        trial=export_trial(data, settings.touches.activities),
    )
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
