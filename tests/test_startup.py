"""Start-up stays cheap: what the real CLI and ``import annobridge`` import, checked in a fresh
interpreter (times are measured by bench/startup_bench.py, never here)."""

from __future__ import annotations

import json
import subprocess
import sys

import annobridge
from annobridge.core.formats import ALL_ANNOTATION_TYPES, ALL_ATTRIBUTES, LazyFunction
from annobridge.core.model import ANNOTATION_TYPES, KNOWN_ATTRIBUTES
from tests.conftest import ROOT

HEAVY = ("numpy", "PIL", "pydantic", "orjson", "pycocotools", "annobridge.core.model",
         "annobridge.converters.engine")


def loaded_after(code: str) -> set[str]:
    """Top modules (and annobridge modules) in sys.modules after running ``code`` in a fresh
    interpreter with the cwd off sys.path (the checkout's annobridge/ would shadow the install)."""
    probe = (
        "import sys\nsys.path = [p for p in sys.path if p not in ('', '.')]\n"
        f"{code}\n"
        "import json\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.__stderr__)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def run_cli(*args: str) -> str:
    return (
        "from annobridge.converters.cli import main\n"
        f"try:\n    main([{', '.join(repr(a) for a in args)}])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
    )


def test_help_imports_no_model_numpy_or_pydantic() -> None:
    loaded = loaded_after(run_cli("--help"))
    assert "annobridge.converters.cli" in loaded  # the probe really ran the CLI
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_subcommand_help_imports_no_engine() -> None:
    loaded = loaded_after(run_cli("convert", "--help"))
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


LISTING_HEAVY = ("numpy", "PIL", "pycocotools", "yaml", "skimage", "annobridge.core.model",
                 "annobridge.converters.engine")
"""What listing formats must not import (pydantic itself is needed: options are its models)."""


def readers_and_writers(loaded: set[str]) -> set[str]:
    """The built-in plugins' implementation modules among ``loaded`` (packages are declarations)."""
    return {m for m in loaded if m.startswith("annobridge.plugins.") and m.count(".") >= 3
            and m.rsplit(".", 1)[1] in ("read", "write")}


def test_listing_builtin_formats_imports_no_reader_writer_model_or_numpy() -> None:
    # what `annobridge formats` does, with the built-in plugins only (an installed third-party
    # plugin decides its own imports)
    loaded = loaded_after(
        "from annobridge.core.plugins import FormatRegistry, get_plugin_manager\n"
        "from annobridge.converters.describe import describe_format\n"
        "registry = FormatRegistry.from_manager(get_plugin_manager(load_entry_points=False))\n"
        "rows = [describe_format(f) for f in registry.formats.values()]\n"
        "assert len(rows) >= 12 and all(r['read_options'] is not None for r in rows)\n"
    )
    assert "annobridge.plugins.coco" in loaded and "annobridge.plugins.nucleus" in loaded
    assert not loaded & set(LISTING_HEAVY), sorted(loaded & set(LISTING_HEAVY))
    assert not readers_and_writers(loaded), sorted(readers_and_writers(loaded))


FORMATS_HEAVY = ("pydantic", "pydantic_core", "numpy", "PIL")
"""What ``annobridge formats`` (the table) must not import: declarations are dataclasses and the
options models, named by LazyFunction, are imported only to list or parse options."""


def test_formats_command_imports_no_pydantic_numpy_pillow_reader_or_writer() -> None:
    # the real command with every installed plugin: CI installs tests/csv_plugin, whose module
    # the probe must have loaded too (it imports NoOptions for type checking only)
    loaded = loaded_after(run_cli("formats"))
    assert "annobridge.plugins.yolo" in loaded  # the probe really listed the formats
    assert "annobridge_box_csv" in loaded
    assert not loaded & set(FORMATS_HEAVY), sorted(loaded & set(FORMATS_HEAVY))
    assert not readers_and_writers(loaded), sorted(readers_and_writers(loaded))
    assert "annobridge.core.distributed" not in loaded  # socket, for worker pools only


def test_listing_one_format_or_json_imports_its_options_models_only() -> None:
    # `formats NAME` shows options: the models are imported, the readers and writers still not
    loaded = loaded_after(run_cli("formats", "coco"))
    assert "annobridge.plugins.coco.options" in loaded and "pydantic" in loaded
    assert "annobridge.plugins.yolo.options" not in loaded
    assert not loaded & {"numpy", "PIL"}, sorted(loaded & {"numpy", "PIL"})
    assert not readers_and_writers(loaded), sorted(readers_and_writers(loaded))


def test_options_models_are_declared_lazily_and_resolve() -> None:
    from pydantic import BaseModel

    from annobridge.core.formats import NO_OPTIONS, NoOptions
    from annobridge.core.plugins import get_registry
    from annobridge.plugins.coco import CocoReadOptions  # re-exported from coco.options on use

    registry = get_registry()
    for fmt in registry.formats.values():
        for which in ("read", "write"):
            assert issubclass(fmt.options_model(which), BaseModel), (fmt.name, which)
    coco = registry.get("coco")
    assert isinstance(coco.read_options, LazyFunction)
    assert coco.options_model("read") is CocoReadOptions
    assert registry.get("jsonl").read_options == NO_OPTIONS
    assert registry.get("jsonl").options_model("write") is NoOptions


def test_an_options_model_that_cannot_be_imported_is_a_plugin_error() -> None:
    from annobridge.core.errors import PluginError
    from annobridge.core.formats import Capabilities, Format

    fmt = Format(name="broken", description="d", capabilities=Capabilities(), plugin="broken-plugin",
                 write_options=LazyFunction("annobridge.core.options", "NoSuchOptions"))
    try:
        fmt.options_model("write")
    except PluginError as exc:
        message = str(exc)
        assert "'broken'" in message and "annobridge.core.options.NoSuchOptions" in message
        assert "broken-plugin" in message
    else:
        raise AssertionError("expected PluginError")


def test_lazy_functions_import_on_first_call_and_pickle_by_name(tmp_path) -> None:
    import pickle

    from annobridge.core.plugins import get_registry

    fmt = get_registry().get("jsonl")
    assert isinstance(fmt.read, LazyFunction) and fmt.read.module == "annobridge.plugins.jsonl.read"
    again = pickle.loads(pickle.dumps(fmt.read))
    assert again == fmt.read and again.function is fmt.read.function
    from annobridge.plugins.kitti import parse_row  # re-exported names still import lazily
    from annobridge.plugins.kitti.read import parse_row as direct

    assert parse_row is direct
    try:
        from annobridge.plugins.kitti import no_such_name  # noqa: F401
    except ImportError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected ImportError")


def test_import_annobridge_is_lazy_until_a_name_is_used() -> None:
    loaded = loaded_after("import annobridge")
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    used = loaded_after("from annobridge import BoxAnnotation\nBoxAnnotation(x=0, y=0, width=1, height=1, label='a')")
    assert "annobridge.core.model" in used


def test_facade_exports_every_public_name() -> None:
    for name in annobridge.__all__:
        assert getattr(annobridge, name) is not None, name
    assert set(annobridge.__all__) <= set(dir(annobridge))
    assert set(annobridge._LAZY) == set(annobridge.__all__)  # the lazy map and __all__ agree
    assert isinstance(annobridge.__version__, str)
    from annobridge import Format, convert  # the from-import form goes through __getattr__ too

    assert Format.__module__ == "annobridge.core.formats"
    assert convert.__module__ == "annobridge.converters.api"


def test_unknown_facade_name_is_an_attribute_error() -> None:
    try:
        annobridge.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_capabilities_take_sets_of_names_as_frozensets() -> None:
    from annobridge.core.formats import Capabilities

    caps = Capabilities(annotation_types={"box"}, prediction_types=["box", "polygon"])
    assert caps.annotation_types == frozenset({"box"}) and isinstance(caps.prediction_types, frozenset)
    assert caps == Capabilities(annotation_types=frozenset({"box"}),
                                prediction_types=frozenset({"box", "polygon"}))
    assert hash(caps) == hash(Capabilities(annotation_types=["box"], prediction_types={"polygon", "box"}))
    for bad in ("box", None):
        try:
            Capabilities(annotation_types=bad)  # type: ignore[arg-type]
        except TypeError as exc:
            assert "annotation_types" in str(exc)
        else:
            raise AssertionError(f"expected TypeError for {bad!r}")
    try:
        Capabilities(annotation_kinds={"box"})  # type: ignore[call-arg]
    except TypeError as exc:
        assert "annotation_kinds" in str(exc)
    else:
        raise AssertionError("expected TypeError for an unknown field")


def test_format_declarations_know_every_model_kind() -> None:
    # core.formats spells the kinds out so declaring a format does not import the model
    assert ALL_ANNOTATION_TYPES == frozenset(ANNOTATION_TYPES) - {"scene_category"}
    assert ALL_ATTRIBUTES == frozenset(KNOWN_ATTRIBUTES)


def test_detecting_a_json_file_imports_only_the_readers_that_may_claim_it(tmp_path) -> None:
    """Each converted file is detected by every format's ``detect``: one that cannot be YOLO,
    KITTI, Pascal VOC or CVAT (a ``.json``) must not import their readers or yaml (their
    imports were half of detection's time, paid by every conversion without ``--from``)."""
    src = tmp_path / "panoptic.json"
    src.write_text(json.dumps({"images": [{"id": 1, "file_name": "1.jpg"}], "categories": [],
                               "annotations": [{"image_id": 1, "file_name": "1.png", "segments_info": []}]}))
    loaded = loaded_after(
        "from pathlib import Path\n"
        "from annobridge.core.plugins import FormatRegistry, get_plugin_manager\n"
        "registry = FormatRegistry.from_manager(get_plugin_manager(load_entry_points=False))\n"
        f"assert registry.detect(Path({str(src)!r})) == ['coco-panoptic']\n"
    )
    claimed = {m for m in readers_and_writers(loaded) if m.split(".")[2] in ("yolo", "kitti", "pascal_voc", "cvat")}
    assert not claimed, sorted(claimed)
    assert "yaml" not in loaded


def test_the_cli_steadies_its_heap_and_a_library_user_keeps_theirs(tmp_path) -> None:
    """``steady_heap`` (glibc's mmap threshold fixed, the imports' objects frozen out of the
    cyclic collector) runs in the CLI's own process, never in a program that calls
    ``annobridge.convert``; and the COCO reader, which freezes its parse while it builds items,
    thaws only what it froze: what the CLI or the calling program froze stays frozen (a server
    freezing before it forks). The frozen objects are the witness (``gc.get_freeze_count``)."""
    src = ROOT / "fixtures" / "coco" / "instances" / "instances.json"
    cli = frozen_after(
        "from annobridge.converters.cli import main\n"
        f"try:\n    main(['convert', {str(src)!r}, {str(tmp_path / 'cli' / 'out.json')!r}, '--to', 'coco'])\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n")
    convert = f"import annobridge\nannobridge.convert({str(src)!r}, {str(tmp_path / 'lib')!r} + '/' + NAME, 'coco')\n"
    library = frozen_after("NAME = 'a.json'\n" + convert)
    program = frozen_after("import gc\ngc.freeze()\nbefore = gc.get_freeze_count()\nNAME = 'b.json'\n" + convert
                           + "assert gc.get_freeze_count() >= before, (gc.get_freeze_count(), before)\n")
    assert (tmp_path / "cli" / "out.json").is_file() and (tmp_path / "lib" / "b.json").is_file()
    assert cli > 10_000, cli  # the imported modules' objects, frozen by steady_heap, still frozen
    assert library == 0  # nothing frozen before: the reader thawed its parse
    assert program > 10_000, program


def frozen_after(code: str) -> int:
    """``gc.get_freeze_count()`` after running ``code`` in a fresh interpreter."""
    code += "import gc, sys\nprint('frozen', gc.get_freeze_count(), file=sys.__stderr__)\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert done.returncode == 0, done.stderr
    return int(done.stderr.strip().splitlines()[-1].split()[1])
