"""Exceptions raised on bad input: each names the file, column, rows and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial


class StageMLError(Exception):
    """Base class for every error stageml raises on purpose."""


class ConfigError(StageMLError):
    """``params.yaml`` (or an argument) is invalid."""


class ContractError(StageMLError):
    """An input table breaks the data contract.

    The message always says where (file, column, first offending rows), what was found
    and how to fix it, so a scheduled job's log is enough to repair the export.
    """

    def __init__(
        self,
        *,
        file: str,
        problem: str,
        fix: str,
        column: str | None = None,
        rows: Sequence[int] | None = None,
    ) -> None:
        self.file = file
        self.column = column
        self.rows = list(rows) if rows is not None else []
        self.problem = problem
        self.fix = fix
        where = f"{file}"
        if column is not None:
            where += f", column '{column}'"
        if self.rows:
            shown = ", ".join(str(r) for r in self.rows[:5])
            more = f" and {len(self.rows) - 5} more" if len(self.rows) > 5 else ""
            where += f", rows {shown}{more}"
        super().__init__(f"{where}: {problem}. Fix: {fix}")

    def __reduce__(self) -> tuple[object, tuple[()]]:
        # Keyword-only fields: rebuilt from them so the error survives a worker process.
        fields = {"file": self.file, "problem": self.problem, "fix": self.fix}
        return partial(ContractError, **fields, column=self.column, rows=self.rows), ()


class ModelError(StageMLError):
    """A model cannot be used as asked (not fitted, wrong features, missing alias)."""
