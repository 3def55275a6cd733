"""Start-up time of the command line: ``annobridge --help`` and ``annobridge formats``.

Each command runs ``--runs`` times in a fresh process; the median wall time is printed next to
the floor (``python -c pass`` with the same interpreter) and the target (0.15 s), with the
median CPU time (user + system) beside it. What each command imports is checked by
tests/test_startup.py; this script only measures. On a loaded machine compare CPU time and
the excess over the floor, not wall times. With ``PYTHONDONTWRITEBYTECODE`` set and no
``__pycache__``, every run compiles annobridge's modules again (about 0.015 s more here).

    python bench/startup_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.15


def median_times(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall and CPU seconds of ``runs`` fresh runs of ``cmd``."""
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("annobridge", path=str(Path(sys.executable).parent)) or "annobridge"
    floor, floor_cpu = median_times([sys.executable, "-c", "pass"], args.runs)
    print(f"{'command':<22} {'median s':>9} {'over floor':>11} {'cpu s':>7} {'target':>7}")
    print(f"{'python -c pass':<22} {floor:>9.3f} {'':>11} {floor_cpu:>7.3f} {'':>7}")
    for argv in (["--help"], ["formats"]):
        t, cpu = median_times([exe, *argv], args.runs)
        verdict = "ok" if t <= TARGET_S else "OVER"
        print(f"{'annobridge ' + ' '.join(argv):<22} {t:>9.3f} {t - floor:>11.3f} {cpu:>7.3f} {verdict:>7}")


if __name__ == "__main__":
    main()
