"""The ``stageml`` command: a thin layer that parses arguments and calls the library.

Every command turns a :class:`~stageml.errors.StageMLError` into a one-paragraph message
on stderr and exit code 2, so scheduled jobs fail loudly with the fix in their log. The
commands live in modules by what they act on (exports, models, scores); importing them
registers them on :data:`app`.
"""

from __future__ import annotations

from stageml.cli import data, models, scores
from stageml.cli.common import app

__all__ = ["app", "data", "main", "models", "scores"]


def main() -> None:
    """Console-script entry point."""
    app()
