"""What every ``stageml`` command shares: the app, consoles, options, error handling."""

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


def data_params(params: Path | None, data: Path) -> Params:
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


def load_checked(data: Path, stages: tuple[str, ...], require_stage_history: bool = False) -> Any:
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


def pd_isna(value: Any) -> bool:
    """Missing-value test for scalars read back from tables."""
    import pandas as pd

    return bool(pd.isna(value))


@contextmanager
def progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """Show a rich progress bar driven by (done, total) callbacks from long library calls."""
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance
