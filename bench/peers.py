"""annobridge against its peers, side by side in one run: speed, memory, and what was written.

Peers (each installed on demand into its own virtual environment under ``bench/.peers/``,
never in the test suite): labelformat, globox, datumaro, at pinned versions. The data is the
generated COCO set of ``bench/coco_generate.py`` (seeded; 50,000 images / ~400,000 objects
by default, cached in ``bench/data/``).

Tasks, each run by every tool that has it:

* ``coco``:  COCO -> COCO
* ``kitti``: COCO -> KITTI label files (no images)
* ``yolo``:  COCO -> YOLO detection labels (no images)
* ``voc``:   COCO -> Pascal VOC XML (no images); annobridge writes the bbox-only objects (the
  polygon and mask objects need the engine's derivation stage, polygon/mask -> box)

Every command runs in a fresh process pinned to one core (``taskset -c 0`` where it exists),
``--repeat`` times; the table shows the median wall time, the peak RSS, and the objects the
output holds against the objects in the input — a fast run that drops data is not a win, and
the table says so. Floors measured in the same run: ``json.load`` of the input (what the
issue calls the floor) and ``orjson`` loads + dumps.

Usage (from the checkout root, after the README's install)::

    python bench/peers.py [--images 50000 --annotations 400000] [--repeat 3]
                          [--tools annobridge labelformat globox datumaro] [--tasks coco kitti yolo voc]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PEERS = HERE / ".peers"
OUT = HERE / "out" / "peers"  # main() points it at a fresh folder (--out)
sys.path.insert(0, str(HERE))
from measure import compile_bytecode  # noqa: E402

PINS = {"labelformat": "labelformat==0.1.17", "globox": "globox==2.9.0", "datumaro": "datumaro==1.13.12"}

# A wrapper that runs one command and reports its wall time, its CPU time (user + system) and
# the peak RSS of its process tree (RUSAGE_CHILDREN of a fresh wrapper covers that command
# alone). CPU time is the steadier figure on a machine that others load too.
_WRAP = (
    "import json, resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "wall = time.perf_counter() - t\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "rss, cpu = use.ru_maxrss * 1024, use.ru_utime + use.ru_stime\n"
    "print(json.dumps({'rc': rc.returncode, 'wall': wall, 'cpu': cpu, 'rss': rss,"
    " 'err': rc.stderr.decode(errors='replace')[-2000:]}))\n"
)

_DATUMARO = """
import sys
import datumaro as dm
src, fmt, out = sys.argv[1:4]
dm.Dataset.import_from(src, "coco_instances").export(out, fmt, save_media=False)
"""

_FLOOR_JSON = "import json, sys\nwith open(sys.argv[1]) as fh:\n    json.load(fh)\n"
_FLOOR_ORJSON = (
    "import orjson, sys\nwith open(sys.argv[1], 'rb') as fh:\n    data = orjson.loads(fh.read())\n"
    "with open(sys.argv[2], 'wb') as fh:\n    fh.write(orjson.dumps(data))\n"
)


@dataclass
class Run:
    task: str
    tool: str
    walls: list[float]
    cpus: list[float]
    rss: int
    objects: int | None
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def peer_python(tool: str) -> Path:
    """The interpreter of ``tool``'s own virtual environment, installing it on first use."""
    env = PEERS / tool
    python = env / "bin" / "python"
    if not python.exists():
        print(f"installing {PINS[tool]} into {env} ...", flush=True)
        venv.create(env, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PINS[tool]], check=True)
    return python


def pinned(cmd: list[str]) -> list[str]:
    taskset = shutil.which("taskset")
    return [taskset, "-c", "0", *cmd] if taskset else cmd


def measure(cmd: list[str], repeat: int, clean: Path | None, folder: Path | None = None
            ) -> tuple[list[float], list[float], int, str]:
    """Run ``cmd`` ``repeat`` times, removing ``clean`` before each run and creating ``folder``
    (the folder the tool expects to exist; by default the output's parent)."""
    walls: list[float] = []
    cpus: list[float] = []
    peak, err = 0, ""
    for _ in range(repeat):
        if clean is not None:
            if clean.is_dir():
                shutil.rmtree(clean)
            clean.unlink(missing_ok=True)
            (folder or clean.parent).mkdir(parents=True, exist_ok=True)
        if hasattr(os, "sync"):
            os.sync()  # the previous run's files reach the disk now, not during this run
        proc = subprocess.run([sys.executable, "-c", _WRAP, *pinned(cmd)], capture_output=True, text=True,
                              check=True)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if res["rc"] != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res['rc']}):\n{res['err']}")
        walls.append(res["wall"])
        cpus.append(res["cpu"])
        peak = max(peak, res["rss"])
        err = res["err"]
    return walls, cpus, peak, err


def count_coco(path: Path) -> tuple[int, int]:
    """Annotations in a COCO file, and how many of them still have a segmentation."""
    import orjson

    anns = orjson.loads(path.read_bytes())["annotations"]
    return len(anns), sum(1 for a in anns if a.get("segmentation"))


def count_rows(folder: Path) -> int:
    """Non-empty label rows in every .txt file below ``folder`` (KITTI and YOLO labels)."""
    n = 0
    for path in folder.rglob("*.txt"):
        if path.parent.name in ("ImageSets",) or path.name in ("train.txt", "val.txt", "obj.names"):
            continue
        with open(path, "rb") as fh:
            n += sum(1 for line in fh if line.strip())
    return n


def dataset(images: int, annotations: int) -> Path:
    path = DATA / f"coco_{images}_{annotations}.json"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "coco_generate.py"), str(path), "--images", str(images),
                        "--annotations", str(annotations), "--seed", "0"], check=True)
    return path


def datumaro_layout(src: Path) -> Path:
    """datumaro's coco importer wants ``<root>/annotations/instances_<subset>.json`` and ``images/``."""
    root = DATA / f"{src.stem}_datumaro"
    ann = root / "annotations" / "instances_train.json"
    if not ann.exists():
        ann.parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / "train").mkdir(parents=True, exist_ok=True)
        os.symlink(src, ann)
    return ann


def commands(tool: str, task: str, src: Path, out: Path) -> tuple[list[str], Path] | None:
    """The command that makes ``tool`` do ``task``, and its output path; None when it cannot."""
    if tool == "annobridge":
        target = out / ("coco.json" if task == "coco" else task)
        # detection labels, as the peers write: polygons and masks become their COCO boxes
        opts = {"kitti": ["--option", "media=none"], "voc": ["--option", "media=none"],
                "yolo": ["--option", "task=detect"]}.get(task, [])
        fmt = {"voc": "pascal-voc"}.get(task, task)
        return [sys.executable, "-m", "annobridge", "-q", "convert", str(src), str(target), "--from", "coco",
                "--to", fmt, "--overwrite", *opts], target
    if tool == "labelformat":
        lf = str(peer_python("labelformat").parent / "labelformat")
        base = [lf, "convert", "--task", "object-detection", "--input-format", "coco", "--input-file", str(src)]
        if task == "coco":
            return [*base, "--output-format", "coco", "--output-file", str(out / "coco.json")], out / "coco.json"
        if task == "kitti":
            return [*base, "--output-format", "kitti", "--output-folder", str(out / "kitti")], out / "kitti"
        if task == "voc":
            return [*base, "--output-format", "pascalvoc", "--output-folder", str(out / "voc")], out / "voc"
        return [*base, "--output-format", "yolov8", "--output-file", str(out / "yolo/data.yaml"),
                "--output-split", "train"], out / "yolo"
    if tool == "globox":
        gb = str(peer_python("globox").parent / "globox")
        if task == "coco":
            return [gb, "convert", str(src), str(out / "coco.json"), "--format", "coco", "--save_fmt", "coco"], \
                out / "coco.json"
        if task == "yolo":  # globox writes into an existing folder
            return [gb, "convert", str(src), str(out / "yolo"), "--format", "coco", "--save_fmt", "yolov5"], \
                out / "yolo"
        if task == "voc":
            return [gb, "convert", str(src), str(out / "voc"), "--format", "coco", "--save_fmt", "pascalvoc"], \
                out / "voc"
        return None
    if tool == "datumaro":
        fmt = {"coco": "coco_instances", "kitti": "kitti_detection", "yolo": "yolo", "voc": "voc_detection"}[task]
        return [str(peer_python("datumaro")), "-c", _DATUMARO, str(datumaro_layout(src)), fmt,
                str(out / task)], out / task
    raise ValueError(tool)


def count_voc_objects(folder: Path) -> int:
    """``<object>`` elements in every VOC XML file below ``folder``."""
    n = 0
    for path in folder.rglob("*.xml"):
        with open(path, "rb") as fh:
            n += fh.read().count(b"<object>")
    return n


def objects_in(task: str, output: Path) -> tuple[int, str]:
    if task == "voc":
        return count_voc_objects(output), ""
    if task == "coco":
        path = output if output.is_file() else next(output.rglob("*.json"))
        n, with_seg = count_coco(path)
        return n, f"{with_seg:,} with segmentation"
    return count_rows(output), ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--annotations", type=int, default=400_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tools", nargs="+", default=["annobridge", "labelformat", "globox", "datumaro"])
    parser.add_argument("--tasks", nargs="+", default=["coco", "kitti", "yolo"], choices=["coco", "kitti", "yolo", "voc"])
    parser.add_argument("--out", type=Path, default=None,
                        help="where outputs go (default: a fresh folder in the system temp dir, removed after)")
    args = parser.parse_args()
    # A fresh output folder per session (see run_all on kernel time).
    global OUT
    OUT = args.out or Path(tempfile.mkdtemp(prefix="annobridge-peers-"))
    try:
        run_all(args)
    finally:
        if args.out is None:
            shutil.rmtree(OUT, ignore_errors=True)


def run_all(args: argparse.Namespace) -> None:
    compile_bytecode()  # as a wheel install would have (the peers' were compiled by pip)
    src = dataset(args.images, args.annotations)
    n_in, seg_in = count_coco(src)
    print(f"input: {src.name}, {src.stat().st_size / 2**20:.0f} MB, {n_in:,} objects "
          f"({seg_in:,} with segmentation); medians of {args.repeat}, one core each", flush=True)
    runs: list[Run] = []
    walls, cpus, rss, _ = measure([sys.executable, "-c", _FLOOR_JSON, str(src)], args.repeat, None)
    runs.append(Run("floor", "json.load", walls, cpus, rss, None))
    floor_out = OUT / "floor.json"
    floor_out.parent.mkdir(parents=True, exist_ok=True)
    walls, cpus, rss, _ = measure([sys.executable, "-c", _FLOOR_ORJSON, str(src), str(floor_out)], args.repeat,
                                  floor_out)
    runs.append(Run("floor", "orjson loads+dumps", walls, cpus, rss, None))
    # Tools take turns within each repeat, every run writes a folder that never existed, and
    # the disk is synced before each run: a writer of 50,000 label files otherwise pays kernel
    # time for what the runs before it left behind (labelformat's KITTI run took 9 s alone and
    # 17-30 s after others here). All outputs are removed at the end.
    for task in args.tasks:
        found: dict[str, Run] = {}
        for i in range(args.repeat):
            for tool in args.tools:
                made = commands(tool, task, src, OUT / tool / task / f"run{i}")
                if made is None:
                    if i == 0:
                        print(f"{tool}: no {task} writer", flush=True)
                    continue
                cmd, output = made
                folder = output if tool == "globox" and task in ("yolo", "voc") else None
                walls, cpus, rss, _ = measure(cmd, 1, output, folder)
                n, note = objects_in(task, output)
                run = found.setdefault(tool, Run(task, tool, [], [], 0, n, note))
                run.walls += walls
                run.cpus += cpus
                run.rss = max(run.rss, rss)
                run.objects = min(run.objects or 0, n)  # the worst run counts
        for run in found.values():
            runs.append(run)
            print(f"{task:<6} {run.tool:<12} {run.wall:7.2f} s {run.cpu:7.2f} s CPU {run.rss / 2**20:7.0f} MB "
                  f"{run.objects:>9,} objects {run.note}", flush=True)
    print_table(runs, n_in)


def print_table(runs: list[Run], n_in: int) -> None:
    floor = next(r for r in runs if r.tool == "json.load")
    print(f"\n{'task':<7}{'tool':<20}{'wall s':>8}{'CPU s':>7}{'peak MB':>9}{'objects':>10}  {'x annobridge':>12}"
          f"{'x floor':>8}{'CPU x floor':>12}  note")
    for r in runs:
        ours = next((o for o in runs if o.task == r.task and o.tool == "annobridge"), None)
        vs = f"{r.wall / ours.wall:12.2f}" if ours and r.task != "floor" else f"{'':>12}"
        objs = f"{r.objects:>10,}" if r.objects is not None else f"{'':>10}"
        note = r.note
        if r.objects is not None and r.objects < n_in:
            note = f"DROPS {n_in - r.objects:,} of {n_in:,}" + (f"; {note}" if note else "")
        print(f"{r.task:<7}{r.tool:<20}{r.wall:8.2f}{r.cpu:7.2f}{r.rss / 2**20:9.0f}{objs}  {vs}"
              f"{r.wall / floor.wall:8.2f}{r.cpu / floor.cpu:12.2f}  {note}")


if __name__ == "__main__":
    main()
