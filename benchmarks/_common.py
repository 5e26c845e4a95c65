"""Helpers shared by the benchmark scripts: child processes, peak memory, Markdown tables.

Each engine runs in a fresh child process so that its peak memory is its own. The child
reports its peak from ``VmHWM`` in ``/proc/self/status``: that high-water mark belongs to
the address space created at ``exec``, whereas ``getrusage(...).ru_maxrss`` also carries
the parent's resident size across fork/exec and would be polluted by it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import psutil

RESULT_PREFIX = "BENCH-RESULT "
# OpenMP workers that spin while waiting steal the other core on a 2-core machine.
CHILD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def peak_rss_mb() -> float:
    """Peak resident set size of this process since it was exec'd, in MB (10**6 bytes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1e6


def emit_result(payload: dict[str, Any]) -> None:
    """Print the child's result as the one line the parent parses."""
    print(RESULT_PREFIX + json.dumps(payload, default=str), flush=True)


def run_child(
    script: str | Path,
    args: Sequence[str],
    *,
    timeout: float,
    max_rss_mb: float | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process and return the result it emitted.

    The parent also polls the RSS of the child and its descendants (summed,
    ``polled_peak_rss_mb``) and kills the child above ``max_rss_mb``, so that on a shared
    machine the kernel's OOM killer never has to pick a victim. A child that crashes, times
    out or is stopped yields ``{"error": ...}``, so one failing engine is reported in the
    table instead of stopping the run. ``env`` adds to (or overrides) the child's
    environment, e.g. ``PYTHONPATH`` to run another version of stageml.
    """
    env = {**os.environ, **CHILD_ENV, **(env or {})}
    command = [sys.executable, str(script), *args]
    polled = 0.0
    cpu_before = _children_cpu_s()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env)
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            polled = max(polled, _rss_mb(child.pid))
            stop = (
                f"timed out after {timeout:,.0f} s"
                if time.monotonic() > deadline
                else f"stopped when its RSS passed {max_rss_mb:,.0f} MB"
                if max_rss_mb and polled > max_rss_mb
                else None
            )
            if stop:
                child.kill()
                child.wait()
                return {"error": stop, "polled_peak_rss_mb": polled}
            time.sleep(0.1)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    # CPU seconds of the child and every descendant it reaped (worker processes): on a
    # shared machine this does not grow when other jobs steal the cores, wall time does.
    cpu = _children_cpu_s() - cpu_before
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return {**result, "polled_peak_rss_mb": polled, "cpu_s": cpu}
    code = child.returncode
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    if code == -signal.SIGKILL:
        how += " (out of memory?)"
    tail = " | ".join(stderr.strip().splitlines()[-3:])
    return {"error": f"{how}{': ' + tail if tail else ''}", "polled_peak_rss_mb": polled}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (worker processes, a JVM), summed."""
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except psutil.Error:  # a worker that just exited
            continue
    return total / 1e6


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def markdown_table(
    columns: Sequence[str], rows: Sequence[Sequence[object]], *, numeric: Iterable[int] = ()
) -> str:
    """A GitHub-flavoured Markdown table; the ``numeric`` column positions right-aligned."""
    right = set(numeric)
    lines = ["| " + " | ".join(columns) + " |"]
    lines.append(
        "| " + " | ".join("---:" if i in right else "---" for i in range(len(columns))) + " |"
    )
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)
