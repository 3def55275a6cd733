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
    case = json.loads(sys.stdin.read())
    scope = {"__name__": "__case__"}
    exec(compile(case["setup"], "<setup>", "exec"), scope)  # imports: not timed
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0 = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    kids0 = kids.ru_utime + kids.ru_stime
    start = time.perf_counter()
    exec(compile(case["code"], "<case>", "exec"), scope)
    wall = time.perf_counter() - start
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime - cpu0
    print(json.dumps({"wall": wall, "rss": me.ru_maxrss * 1024, "cpu": cpu,
                      "children_cpu": kids.ru_utime + kids.ru_stime - kids0}))
    """
)


@dataclass
class Result:
    name: str
    wall: float
    rss: int
    cpu: float = 0.0
    """CPU seconds (user + system) of the case's process and its workers, after ``setup``:
    on a shared machine compare this, wall time is noisy."""
    children_cpu: float = 0.0
    """... of which its worker processes (once they are joined)."""


def compile_bytecode() -> None:
    """Write the bytecode of the installed annobridge, as installing a wheel does.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on this project's machines)
    compiles every module again in each run (~0.06 s), which the peers, installed from
    wheels, never pay; Python reads existing bytecode even with that variable set.
    """
    code = ("import annobridge.core, annobridge.plugins, annobridge.converters, compileall, sys\n"
            "ok = all(compileall.compile_dir(p, quiet=1) for m in (annobridge.core, annobridge.plugins,"
            " annobridge.converters) for p in m.__path__)\n"
            "sys.exit(0 if ok else 1)\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd="/")


def run_case(name: str, code: str, *, env: dict[str, str] | None = None, setup: str = "") -> Result:
    """Run ``code`` in a fresh interpreter; return its wall time (s), CPU time and peak RSS
    (bytes). ``setup`` runs first in the same namespace, untimed (imports, when start-up is
    measured on its own)."""
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER], input=json.dumps({"setup": textwrap.dedent(setup), "code": textwrap.dedent(code)}),
        capture_output=True, text=True,
        env={**os.environ, **(env or {})}, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {name!r} failed:\n{proc.stderr}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return Result(name, data["wall"], data["rss"], data.get("cpu", 0.0), data.get("children_cpu", 0.0))


def print_table(title: str, floor: Result, results: list[Result]) -> None:
    """Print wall time, CPU time, peak RSS and their ratios to the floor."""
    print(f"\n{title}")
    print(f"{'case':<40} {'wall s':>8} {'cpu s':>8} {'peak MB':>8} {'x time':>7} {'x cpu':>7} {'x mem':>7}")
    for r in [floor, *results]:
        print(f"{r.name:<40} {r.wall:8.2f} {r.cpu:8.2f} {r.rss / 2**20:8.0f} {r.wall / floor.wall:7.2f} "
              f"{r.cpu / max(floor.cpu, 1e-9):7.2f} {r.rss / floor.rss:7.2f}")
