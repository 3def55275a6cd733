"""Start-up time of the command line: ``annobridge --help`` and ``annobridge formats``.

Each command runs ``--runs`` times in a fresh process; the median wall time is printed next to
the floor (``python -c pass`` with the same interpreter) and the target (0.15 s). What each
command imports is checked by tests/test_startup.py; this script only measures. On a loaded
machine compare the excess over the floor, not absolute times.

    python bench/startup_bench.py [--runs 15]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_S = 0.15


def median_wall(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = shutil.which("annobridge", path=str(Path(sys.executable).parent)) or "annobridge"
    floor = median_wall([sys.executable, "-c", "pass"], args.runs)
    print(f"{'command':<22} {'median s':>9} {'over floor':>11} {'target':>7}")
    print(f"{'python -c pass':<22} {floor:>9.3f} {'':>11} {'':>7}")
    for argv in (["--help"], ["formats"]):
        t = median_wall([exe, *argv], args.runs)
        verdict = "ok" if t <= TARGET_S else "OVER"
        print(f"{'annobridge ' + ' '.join(argv):<22} {t:>9.3f} {t - floor:>11.3f} {verdict:>7}")


if __name__ == "__main__":
    main()
