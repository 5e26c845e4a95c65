"""Durations written as ``7d``, ``12h``, ``2w`` or ``90m`` in ``params.yaml``.

Exports span hours (e-commerce sessions) to years (B2B deals), so every window and horizon
is a duration with an explicit unit rather than a number of days.
"""

from __future__ import annotations

import re

import pandas as pd

from stageml.errors import ConfigError

_UNITS = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


def parse_duration(text: str | pd.Timedelta, *, allow_zero: bool = False) -> pd.Timedelta:
    """Parse ``"<int><unit>"`` with unit in s, m, h, d, w into a positive Timedelta."""
    if isinstance(text, pd.Timedelta):
        value = text
    else:
        match = _PATTERN.match(str(text))
        if match is None:
            raise ConfigError(
                f"cannot read duration {text!r}: expected a whole number and a unit "
                "(s, m, h, d, w), e.g. '30d', '12h' or '2w'"
            )
        value = pd.Timedelta(int(match.group(1)), unit=_UNITS[match.group(2)])
    if value < pd.Timedelta(0) or (value == pd.Timedelta(0) and not allow_zero):
        raise ConfigError(f"duration {text!r} must be positive")
    return value


def format_duration(value: pd.Timedelta) -> str:
    """Shortest exact ``<int><unit>`` spelling, used in feature names (``n_7d``)."""
    seconds = int(value.total_seconds())
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"
