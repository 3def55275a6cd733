"""Shared benchmark plumbing: run each case in a fresh subprocess, measure wall time and
peak RSS, and print a table of ratios to a floor measured in the same run.

Benchmark scripts import :func:`run_case` and :func:`print_table`. Each case is a Python
snippet executed in its own interpreter, so peak RSS is that case's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

_RUNNER = textwrap.dedent(
    """
    import json, os, resource, sys, time
    # ``-c`` puts the working directory first on sys.path; run from the checkout root, the
    # repository's annobridge/ folder would shadow the installed package (whose
    # annobridge.converters maps to converters/). Import the installed one.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    code = sys.stdin.read()
    start = time.perf_counter()
    exec(compile(code, "<case>", "exec"), {"__name__": "__case__"})
    wall = time.perf_counter() - start
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # worker processes, once they are joined
    print(json.dumps({"wall": wall, "rss": me.ru_maxrss * 1024, "cpu": me.ru_utime + me.ru_stime,
                      "children_cpu": kids.ru_utime + kids.ru_stime}))
    """
)


@dataclass
class Result:
    name: str
    wall: float
    rss: int
    cpu: float = 0.0  # user + sys seconds of the case's own process
    children_cpu: float = 0.0  # ... and of the worker processes it started and joined


def run_case(name: str, code: str, *, env: dict[str, str] | None = None) -> Result:
    """Run ``code`` in a fresh interpreter; return its wall time (s) and peak RSS (bytes)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=textwrap.dedent(code), capture_output=True, text=True,
        env={**os.environ, **(env or {})}, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {name!r} failed:\n{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(name, data["wall"], data["rss"], data.get("cpu", 0.0), data.get("children_cpu", 0.0))


def print_table(title: str, floor: Result, results: list[Result]) -> None:
    """Print wall time, peak RSS and both ratios to the floor."""
    print(f"\n{title}")
    print(f"{'case':<40} {'wall s':>8} {'peak MB':>8} {'x time':>7} {'x mem':>7}")
    for r in [floor, *results]:
        print(f"{r.name:<40} {r.wall:8.2f} {r.rss / 2**20:8.0f} {r.wall / floor.wall:7.2f} {r.rss / floor.rss:7.2f}")
