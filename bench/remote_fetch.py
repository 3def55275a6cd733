"""What a sharded bucket-to-bucket conversion downloads, counted on a local moto S3 server
(the bytes its app sends): the driver's listing alone, then the whole run on two workers,
as object GETs and bytes, split into the per-item files (images, point clouds, label files,
PNGs, masks) and the rest (JSON, JSONL, YAML, ImageSets). Every output is checked to be
byte-identical to a one-process conversion of the local folder (COCO's names its source).
KITTI -> Nucleus fetches each velodyne scan once (the writer converts it; the worker reading
the frame checks only its size, known from the listing), KITTI -> COCO none.

    python bench/remote_fetch.py [--frames 200] [--images 100] [--workers 2] [--executor process|dask]

Sources are generated in a temporary folder: KITTI (``kitti_generate.py``), COCO panoptic
(``panoptic_generate.py``), and YOLO and Nucleus (with masks) converted from them.
Needs ``annobridge[s3]`` and ``moto[server]``.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent


class Requests:
    """A WSGI wrapper of the moto server's app: object key -> (GETs answered, bytes sent)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.gets: dict[str, list[int]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        body = self.app(environ, start_response)
        if environ["REQUEST_METHOD"] != "GET" or environ.get("QUERY_STRING"):  # listings have a query
            return body
        chunks = list(body)
        seen = self.gets.setdefault(unquote(environ["PATH_INFO"]).lstrip("/"), [0, 0])
        seen[0] += 1
        seen[1] += sum(len(c) for c in chunks)
        return chunks


def _digest(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode())
        h.update(files[name])
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=200, help="KITTI frames (YOLO is converted from them)")
    ap.add_argument("--images", type=int, default=100, help="panoptic images (Nucleus is converted from them)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--executor", default="process", help="process (forked workers) or dask (a LocalCluster)")
    a = ap.parse_args()

    import os

    import s3fs
    from moto.server import ThreadedMotoServer

    import annobridge
    from annobridge.converters import engine
    from annobridge.core import storage
    from annobridge.core.formats import Context

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    requests = Requests(server._server.app)  # the server calls server.app for each request
    server._server.app = requests
    tmp = Path(tempfile.mkdtemp(prefix="remote-fetch-bench."))
    try:
        subprocess.run([sys.executable, str(HERE / "kitti_generate.py"), str(tmp / "kitti"), "--frames",
                        str(a.frames), "--points", "20000"], check=True, capture_output=True)
        subprocess.run([sys.executable, str(HERE / "panoptic_generate.py"), str(tmp / "pan"), "--images",
                        str(a.images), "--width", "320", "--height", "240"], check=True, capture_output=True)
        annobridge.convert(tmp / "kitti", tmp / "yolo", "yolo", write_options={"media": "copy"})
        annobridge.convert(tmp / "pan" / "panoptic.json", tmp / "nuc" / "items.jsonl", "nucleus")
        cases = [  # name, local source folder, file inside it (or ""), per-item folders, target, output
            ("KITTI -> KITTI", tmp / "kitti", "", ("training/",), "kitti", "out"),
            ("KITTI -> Nucleus", tmp / "kitti", "", ("training/",), "nucleus", "out.jsonl"),
            ("KITTI -> COCO", tmp / "kitti", "", ("training/",), "coco", "out.json"),
            ("YOLO -> KITTI", tmp / "yolo", "", ("images/", "labels/"), "kitti", "out"),
            ("panoptic -> COCO", tmp / "pan", "panoptic.json", ("panoptic/",), "coco", "out.json"),
            ("Nucleus -> COCO", tmp / "nuc", "items.jsonl", ("items.masks/",), "coco", "out.json"),
        ]
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="bench", secret="bench")
        print(f"{a.workers} workers ({a.executor}); GETs (bytes) of the source's objects")
        print(f"{'case':<18} {'':>6} {'per-item files':>24} {'other files':>22} {'per-item objects':>17}")
        for n, (title, folder, name, per_item, fmt, out) in enumerate(cases):
            bucket = f"src{n}"
            fs.mkdir(bucket)
            fs.mkdir(f"dst{n}")
            for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                fs.put_file(str(f), f"{bucket}/data/{f.relative_to(folder).as_posix()}")
            sizes = {k: v["size"] for k, v in fs.find(bucket, detail=True).items()}
            items = {k for k in sizes if k[len(bucket) + 6:].startswith(per_item)}
            url = f"s3://{bucket}/data" + (f"/{name}" if name else "")
            local = tmp / "local" / str(n)
            annobridge.convert(folder / name if name else folder, local / out, fmt)

            def row(label: str) -> None:
                got = dict(requests.gets)
                per = [(c, b) for k, (c, b) in got.items() if k in items]
                rest = [(c, b) for k, (c, b) in got.items() if k in sizes and k not in items]
                print(f"{title if label == 'driver' else '':<18} {label:>6} "
                      f"{sum(c for c, _ in per):>9} ({sum(b for _, b in per) / 2**20:8.2f} MiB) "
                      f"{sum(c for c, _ in rest):>7} ({sum(b for _, b in rest) / 2**20:8.2f} MiB) "
                      f"{len(items):>10} ({sum(sizes[k] for k in items) / 2**20:.2f} MiB)")

            requests.gets.clear()
            ctx = Context(workers=a.workers)
            try:
                engine.read_shards(url, context=ctx)
                row("driver")
            finally:
                ctx.close(cancel=True)
                storage.release(url)
            requests.gets.clear()
            annobridge.convert(url, f"s3://dst{n}/{out}", fmt, workers=a.workers, executor=a.executor)
            row("total")
            got = {k[len(f"dst{n}/"):]: fs.cat_file(k) for k in fs.find(f"dst{n}")}
            want = {p.relative_to(local).as_posix(): p.read_bytes() for p in local.rglob("*") if p.is_file()}
            if fmt == "nucleus":  # it names the source's images: the folder's paths, the bucket's URLs
                want = {k: v.replace(str(folder).encode(), f"s3://{bucket}/data".encode()) for k, v in want.items()}
            if fmt != "coco" and _digest(got) != _digest(want):  # COCO names its source's folder or bucket
                raise SystemExit(f"{title}: the bucket output differs from the local output")
            if sorted(got) != sorted(want):
                raise SystemExit(f"{title}: the bucket output has other files than the local output")
    finally:
        server.stop()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
