"""Installed plugins (real ``.dist-info`` entry points, found by importlib.metadata) that break:
the ``annobridge`` command reports them and keeps working for everything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).with_name("annobridge"))
ROOT = Path(__file__).resolve().parent.parent


def _dist(site: Path, name: str, code: str) -> None:
    (site / f"{name}.py").write_text(code)
    info = site / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[annobridge]\n{name} = {name}\n")


def _run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120)


def test_a_raising_plugin_and_two_claims_on_one_name_fail_only_what_uses_them(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _dist(site, "ab_broken", "from annobridge import hookimpl\n\n@hookimpl\ndef register_formats():\n"
                             "    raise RuntimeError('broken on purpose')\n")
    _dist(site, "ab_dup", "from annobridge import Capabilities, Format, hookimpl\n\n@hookimpl\n"
                          "def register_formats():\n"
                          "    return [Format(name='coco', description='d', capabilities=Capabilities())]\n")
    listed = _run(site, "plugins")
    assert listed.returncode == 0, listed.stderr
    out = json.loads(listed.stdout)
    assert {"name": "ab_broken", "error": "register_formats raised RuntimeError: broken on purpose"} in out["failed"]
    assert {"format": "coco", "plugins": ["annobridge.plugins.coco", "ab_dup"]} in out["conflicts"]
    by_name = {p["name"]: p["formats"] for p in out["plugins"]}
    assert by_name["ab_dup"] == ["coco"] and "coco" in by_name["annobridge.plugins.coco"]
    assert "ab_broken" in listed.stderr  # the warning names the plugin
    assert _run(site, "formats").returncode == 0
    fixture = ROOT / "fixtures" / "jsonl" / "all-kinds" / "dataset.jsonl"
    ok = _run(site, "convert", str(fixture), str(tmp_path / "n.jsonl"), "--to", "jsonl")
    assert ok.returncode == 0, ok.stderr
    bad = _run(site, "convert", str(fixture), str(tmp_path / "c.json"), "--to", "coco")
    assert bad.returncode == 1
    assert "format 'coco' is provided by both 'annobridge.plugins.coco' and 'ab_dup'" in bad.stderr
    assert "Traceback" not in bad.stderr + listed.stderr
