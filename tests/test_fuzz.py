"""A seeded, bounded mutation fuzz of every built-in reader over every fixture (issue 10).

Each mutant changes one file of a fixture (a byte flipped, a span cut or doubled, a hostile
token put in: NaN, 1e400, a 5,000-digit integer, deep nesting, invalid UTF-8, NUL, ``../``,
an absolute path; a PNG chunk broken or cut short). Reading it may fail, but only with an
AnnobridgeError, and ``validate`` never raises at all. Same seed, same mutants: a failure
names the seed, the file and the mutation, so it can be replayed.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

from annobridge.converters import engine
from annobridge.core.errors import AnnobridgeError
from annobridge.core.formats import Context
from annobridge.core.plugins import FormatRegistry, get_registry

FIX = Path(__file__).resolve().parent.parent / "fixtures"
MUTANTS = 100  # per format: a few seconds each; on the code before issue 10 it fails 7 of 8 formats
SEED = 10

TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-1e309", b"9" * 5000, b"[" * 3000, b"{" * 1500,
          b"\xff\xfe\xfd", b"\x00", b'"../../../../etc/passwd"', b'"/etc/passwd"', b'"C:\\\\x"', b"null",
          b"{}", b"[]", b"-1", b'""', b"true", b"1.5", b"\n", b"\\", b'"', b"1e309 1e309 1e309"]
NUMBER = re.compile(rb"-?\d+(\.\d+)?([eE][-+]?\d+)?")
STRING = re.compile(rb'"[^"\\\n]{1,80}"')


def _fixtures() -> dict[str, list[tuple[Path, Path, dict]]]:
    """format -> [(folder to copy, entry relative to it, read options)]."""
    out: dict[str, list[tuple[Path, Path, dict]]] = {}
    for p in sorted(FIX.glob("coco/*/*.json")):
        out.setdefault("coco", []).append((p.parent, Path(p.name), {}))
    for name in ("datumaro/panoptic_train.json", "mapillary/panoptic_2020.json"):
        p = FIX / "coco-panoptic" / name
        out.setdefault("coco-panoptic", []).append((p.parent, Path(p.name), {}))
    out["jsonl"] = [(FIX / "jsonl" / "all-kinds", Path("dataset.jsonl"), {})]
    for p in sorted((FIX / "kitti").iterdir()):
        if p.is_dir():
            out.setdefault("kitti", []).append((p, Path("training") if (p / "training").is_dir() else Path("."), {}))
    out["kitti-tracking"] = [(FIX / "kitti-tracking" / "generated", Path("training"), {})]
    out["lightly"] = [(FIX / "lightly" / "datasource" / "bucket", Path(".lightly"), {"input": "{root}"}),
                      (FIX / "lightly" / "docs-examples", Path(".lightly"), {})]
    out["lightly-task"] = [(FIX / "lightly-task" / "labelformat-detection", Path("detection-task-name"), {})]
    out["nucleus"] = [(p.parent, Path(p.name), {}) for p in sorted(FIX.glob("nucleus/*/items.jsonl"))]
    return out


FIXTURES = _fixtures()


def _mutate(data: bytes, rng: random.Random, png: bool) -> tuple[bytes, str]:
    if not data:
        return rng.choice(TOKENS), "replaced an empty file"
    i = rng.randrange(len(data))
    if png:
        kind = rng.choice(["flip", "cut", "flip-header", "zero-chunk"])
        if kind == "flip-header":
            i = rng.randrange(8, min(len(data), 40))
        if kind == "cut":
            return data[: i], f"cut at byte {i}"
        if kind == "zero-chunk":
            return data[:i] + bytes(min(64, len(data) - i)) + data[i + 64:], f"zeroed 64 bytes at {i}"
        return data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1:], f"{kind} at byte {i}"
    kind = rng.choice(["flip", "cut", "double", "token", "token", "number", "number", "string"])
    if kind == "flip":
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:], f"byte {i} changed"
    if kind == "cut":
        j = min(len(data), i + rng.randrange(1, 200))
        return data[:i] + data[j:], f"bytes {i}..{j} cut"
    if kind == "double":
        j = min(len(data), i + rng.randrange(1, 200))
        return data[:j] + data[i:j] + data[j:], f"bytes {i}..{j} doubled"
    token = rng.choice(TOKENS)
    pattern = NUMBER if kind == "number" else STRING if kind == "string" else None
    if pattern is not None:
        matches = list(pattern.finditer(data))
        if matches:
            m = rng.choice(matches)
            return data[: m.start()] + token + data[m.end():], f"{m.group()[:20]!r} at {m.start()} -> {token[:20]!r}"
    return data[:i] + token + data[i:], f"{token[:20]!r} put at byte {i}"


def _exercise(entry: Path, fmt: str, options: dict, registry: FormatRegistry) -> None:
    """Read everything, masks included (their PNGs are decoded lazily)."""
    ds = engine.read_dataset(entry, fmt, options, context=Context(), registry=registry)
    for item in ds.items:
        for ann in (*item.annotations, *item.predictions):
            if ann.type == "segmentation" and "://" not in (ann.mask.location or ""):
                ann.mask.load()


@pytest.mark.parametrize("fmt", sorted(FIXTURES))
def test_mutants_raise_only_annobridge_errors_and_validate_never_crashes(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(f"{SEED}-{fmt}")
    registry = get_registry()
    copies = []
    for n, (folder, entry, options) in enumerate(FIXTURES[fmt]):
        copy = tmp_path / str(n) / folder.name
        shutil.copytree(folder, copy, symlinks=True)
        files = sorted(p for p in copy.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".txt", ".png")
                       and p.name != "SOURCES.md" and p.name != "expected.jsonl")
        opts = {k: v.format(root=copy) for k, v in options.items()}
        copies.append((copy / entry, files, opts))
    failures = []
    for k in range(MUTANTS):
        entry, files, opts = copies[k % len(copies)]
        target = entry if entry.is_file() and rng.random() < 0.5 else rng.choice(files)
        original = target.read_bytes()
        mutant, what = _mutate(original, rng, target.suffix == ".png")
        target.write_bytes(mutant)
        place = f"mutant {k} (seed {SEED}-{fmt}): {target.relative_to(tmp_path)}: {what}"
        try:
            _exercise(entry, fmt, opts, registry)
        except AnnobridgeError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may escape
            failures.append(f"load: {place}: {type(exc).__name__}: {exc}"[:300])
        try:
            problems = engine.validate(entry, fmt, opts, registry=registry)
            assert all(isinstance(p, AnnobridgeError) for p in problems)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"validate: {place}: {type(exc).__name__}: {exc}"[:300])
        target.write_bytes(original)
    assert not failures, "\n".join(failures)
