"""Scale-out benchmark: 1 vs 2 local worker processes, and local processes vs Dask, for
COCO -> KITTI, COCO -> YOLO, COCO panoptic -> COCO, COCO panoptic -> COCO panoptic,
KITTI -> Nucleus and Lightly -> KITTI;
optionally the same COCO -> KITTI from one S3 bucket to another on a local moto server (``--s3``).

Every case runs in a fresh interpreter on generated data (``coco_generate.py``,
``panoptic_generate.py``, ``kitti_generate.py``, ``lightly_bench.py``; cached in
``bench/data/``), and every output is checked to be byte-identical to the one-process
output. ``dask`` starts a ``LocalCluster`` of ``--workers`` processes inside the case (its
start-up is in the time).
Each case runs ``--repeat`` times, interleaved, and its median and fastest runs are printed
with the CPU time of the driver and of its worker processes (counted once they are joined).
On a shared machine wall times are noisy: the CPU accounting line gives what the CPU split
allows on idle cores, from the serial time the driver spends before any worker can start
(importing, opening and listing the source: timed alone) and the rest shared by the workers.

The panoptic and Lightly cases run on two sizes each: a small set (about a second in one
process) and one four times larger. Start-up (the interpreter, the imports, listing the
source: ~0.2 s of wall time) is serial with any number of workers, so on a one-second set it
alone holds the speed-up near 1.5x; the larger set shows what workers give once the items
dominate, as they do on real datasets (COCO panoptic val2017 has 5,000 PNGs).

    python bench/scale_bench.py [--workers 2] [--coco-images 5000] [--panoptic-images 300 1000]
                                [--kitti-frames 200] [--lightly-images 5000 20000] [--repeat 3] [--s3]
                                [--only coco-kitti coco-yolo panoptic-coco panoptic-panoptic kitti-nucleus
                                        lightly-kitti]

Needs ``annobridge[dask]`` (and ``annobridge[s3]`` + ``moto[server]`` for ``--s3``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from measure import Result, compile_bytecode, run_case  # noqa: E402

DATA = HERE / "data"
OUT = HERE / "out" / "scale"

CONVERT = """
from annobridge.converters import engine
from annobridge.core.formats import steady_heap
steady_heap()  # as the CLI does: both cases start from the same allocator settings
engine.convert({src!r}, {dst!r}, dst_format={fmt!r}, overwrite=True, workers={workers},
               executor={executor!r})
"""


def _digest(root: Path) -> str:
    """One hash of every file under ``root`` (names and bytes), to compare outputs."""
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    for p in files:
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def coco(images: int) -> Path:
    path = DATA / f"coco_scale_{images}.json"
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "coco_generate.py"), str(path), "--images", str(images),
                        "--annotations", str(images * 8), "--seed", "0"], check=True)
    return path


def panoptic(images: int) -> Path:
    out = DATA / f"panoptic_scale_{images}"
    if not (out / "panoptic.json").exists():
        subprocess.run([sys.executable, str(HERE / "panoptic_generate.py"), str(out), "--images", str(images),
                        "--width", "640", "--height", "480"], check=True)
    return out / "panoptic.json"


def kitti(frames: int) -> Path:
    out = DATA / f"kitti_scale_{frames}"
    if not (out / "training").exists():
        subprocess.run([sys.executable, str(HERE / "kitti_generate.py"), str(out), "--frames", str(frames),
                        "--points", "20000"], check=True)
    return out


def lightly(images: int) -> Path:
    """A ``.lightly`` folder of ``images`` images (nested metadata, 5 predicted boxes each):
    workers read its per-image files in parts and write KITTI ``results/`` files."""
    out = DATA / f"lightly_scale_{images}"
    if not (out / ".lightly" / "metadata" / "schema.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run([sys.executable, "-c", f"import lightly_bench; lightly_bench.build(__import__('pathlib')"
                        f".Path({str(out)!r}), {images})"], cwd=HERE, check=True)
    return out / ".lightly"


LIST = """
from annobridge.converters import engine
from annobridge.core.formats import Context, steady_heap
steady_heap()  # as CONVERT (and the CLI) does
ctx = Context(workers={workers})
try:
    engine.read_shards({src!r}, context=ctx)
finally:
    ctx.close()
"""
"""What the driver does before any worker can start: import, open and list (parse) the source."""


def run(title: str, src: Path, fmt: str, name: str, workers: int, repeat: int) -> None:
    """Each case ``repeat`` times, interleaved (1 process, N processes, Dask, 1 process, ...);
    each case's median and fastest runs (on a shared machine the minimum is the least disturbed)
    and the medians' ratio, then the CPU accounting of the median runs."""
    cases = [("1 process", 1, "process"), (f"{workers} processes", workers, "process"),
             (f"dask LocalCluster x{workers}", workers, "dask")]
    runs: dict[str, list[Result]] = {label: [] for label, _, _ in cases}
    digests: dict[str, str] = {}
    serial: list[Result] = []
    for _ in range(repeat):
        for label, n, executor in cases:
            out = OUT / f"{fmt}-{n}-{executor}"
            shutil.rmtree(out, ignore_errors=True)
            if hasattr(os, "sync"):
                os.sync()  # the previous run's files reach the disk now, not during this run
            dst = out / name
            runs[label].append(run_case(label, CONVERT.format(src=str(src), dst=str(dst), fmt=fmt, workers=n,
                                                              executor=executor)))
            digests.setdefault(label, _digest(out))
        serial.append(run_case("listing", LIST.format(src=str(src), workers=workers)))
    median = {label: sorted(rs, key=lambda r: r.wall)[len(rs) // 2] for label, rs in runs.items()}
    base = median[cases[0][0]]
    print(f"\n{title}")
    print(f"{'case':<28} {'median s':>8} {'best s':>7} {'peak MB':>8} {'speed-up':>9} {'driver cpu':>11} "
          f"{'worker cpu':>11}  output")
    for label, _, _ in cases:
        r = median[label]
        same = "identical" if digests[label] == digests[cases[0][0]] else "DIFFERS"
        print(f"{r.name:<28} {r.wall:8.2f} {min(x.wall for x in runs[label]):7.2f} {r.rss / 2**20:8.0f} "
              f"{base.wall / r.wall:8.2f}x {r.cpu - r.children_cpu:10.2f}s {r.children_cpu:10.2f}s  {same}")
        if same != "identical":
            raise SystemExit(f"{title}: {r.name} wrote different bytes than one process")
    one, many = base, median[cases[1][0]]
    if many.children_cpu:  # what idle cores would give: the serial listing, then the rest shared
        before = sorted(r.cpu for r in serial)[len(serial) // 2]
        ideal = before + (many.cpu - before) / workers
        print(f"{'':<28} CPU accounting: one process {one.cpu:.2f}s; {workers} processes {many.cpu:.2f}s, "
              f"of which {before:.2f}s serial before the workers start; on {workers} idle cores "
              f"{ideal:.2f}s = {one.cpu / ideal:.2f}x")


def s3_case(src: Path) -> None:
    """COCO -> KITTI local folder to local folder vs bucket to bucket on a moto server."""
    import socket

    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        fs = s3fs.S3FileSystem(endpoint_url=env["AWS_ENDPOINT_URL"], key="bench", secret="bench")
        fs.mkdir("bench-src")
        fs.mkdir("bench-dst")
        fs.put_file(str(src), "bench-src/coco.json")
        local_out = OUT / "kitti-local"
        shutil.rmtree(local_out, ignore_errors=True)
        local = run_case("local -> local", CONVERT.format(src=str(src), dst=str(local_out / "kitti"), fmt="kitti",
                                                          workers=1, executor="process"))
        remote = run_case("s3 -> s3 (moto)", CONVERT.format(src="s3://bench-src/coco.json",
                                                            dst="s3://bench-dst/kitti", fmt="kitti", workers=1,
                                                            executor="process"), env=env)
        written = sorted(fs.find("bench-dst/kitti"))
        want = sorted(p for p in (local_out / "kitti").rglob("*") if p.is_file())
        if len(written) != len(want) or fs.cat_file(written[0]) != want[0].read_bytes():
            raise SystemExit("the bucket output differs from the local output")
        print("\nCOCO -> KITTI, local folders vs S3 buckets (moto server on 127.0.0.1)")
        for r in (local, remote):
            print(f"{r.name:<28} {r.wall:8.2f} s  {len(written)} files")
    finally:
        server.stop()


CASES = ("coco-kitti", "coco-yolo", "panoptic-coco", "panoptic-panoptic", "kitti-nucleus", "lightly-kitti")


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--coco-images", type=int, default=5000)
    ap.add_argument("--panoptic-images", type=int, nargs="+", default=[300, 1000])
    ap.add_argument("--kitti-frames", type=int, default=200)
    ap.add_argument("--lightly-images", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--repeat", type=int, default=3, help="runs per case; the fastest is kept")
    ap.add_argument("--out", type=Path, default=OUT,
                    help="where outputs go (a tmpfs such as /dev/shm/scale takes the disk's state out of "
                         "the figures: on ext4 the system time of 50,000 file creations swung 1-6 s per run)")
    ap.add_argument("--s3", action="store_true", help="also time COCO -> KITTI bucket to bucket")
    ap.add_argument("--only", nargs="+", choices=CASES, default=list(CASES), metavar="CASE",
                    help=f"run only these conversions ({', '.join(CASES)})")
    a = ap.parse_args()
    compile_bytecode()  # as a wheel install would have: not recompiled in every run
    OUT = a.out
    DATA.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPU(s); {a.workers} workers; load average {os.getloadavg()[0]:.1f} "
          "(figures are fair only on an idle machine)")
    cases = {  # name: (title, source, target format, output name), one per set size
        "coco-kitti": [(f"COCO -> KITTI ({a.coco_images} images)", lambda: coco(a.coco_images), "kitti", "kitti")],
        "coco-yolo": [(f"COCO -> YOLO ({a.coco_images} images)", lambda: coco(a.coco_images), "yolo", "yolo")],
        "panoptic-coco": [(f"COCO panoptic -> COCO ({n} images 640x480)", lambda n=n: panoptic(n), "coco",
                           "out.json") for n in a.panoptic_images],
        # the workers write the PNGs (each decoded once, by the worker reading it), the driver the JSON
        "panoptic-panoptic": [(f"COCO panoptic -> COCO panoptic ({n} images 640x480)", lambda n=n: panoptic(n),
                               "coco-panoptic", "out.json") for n in a.panoptic_images],
        "kitti-nucleus": [(f"KITTI -> Nucleus ({a.kitti_frames} frames, 20,000 points)",
                           lambda: kitti(a.kitti_frames), "nucleus", "scans.jsonl")],
        "lightly-kitti": [(f"Lightly -> KITTI ({n} images x 5 predicted boxes, nested metadata)",
                           lambda n=n: lightly(n), "kitti", "kitti") for n in a.lightly_images],
    }
    for name in CASES:
        if name in a.only:
            for title, source, fmt, out in cases[name]:
                run(title, source(), fmt, out, a.workers, a.repeat)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if a.s3:
        s3_case(coco(a.coco_images))


if __name__ == "__main__":
    main()
