"""Shared fixtures: tests import helpers from this folder (reference implementations)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
