"""Argument parsing shared by the DVC stage scripts (each script stays a few lines)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stageml.config import Params, load_params


def parse(*paths: str) -> tuple[Params, argparse.Namespace]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    for name in paths:
        parser.add_argument(f"--{name}", type=Path, required=True)
    args = parser.parse_args()
    return load_params(args.params), args
