"""The repo layout must never shadow the standard library's ``platform`` module."""

import importlib
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_platform_is_the_standard_library():
    module = importlib.import_module("platform")
    stdlib = Path(sysconfig.get_paths()["stdlib"]).resolve()
    assert Path(module.__file__).resolve().parent == stdlib
    assert callable(module.python_version)


def test_import_platform_from_repo_root_in_a_fresh_interpreter():
    out = subprocess.run([sys.executable, "-c", "import platform, thingbridge;"
                          "print(platform.__file__); print(platform.system())"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert "site-packages" not in out[0] and not out[0].startswith(str(ROOT / "platform"))
    assert out[1] == "Linux"


def test_source_roots_have_no_top_level_package():
    for root in ("platform", "connectors", "workers"):
        assert not (ROOT / root / "__init__.py").exists()


def test_no_source_file_reads_outside_the_repository():
    """A clone anywhere must run: fixtures live in tests/fixtures/, never in a sibling folder."""
    outside = ("provider-samples", "../shared/", '"shared" /', "/work/")
    offenders = [str(path.relative_to(ROOT))
                 for folder in ("tests", "bench", "connectors", "workers", "platform", "scripts")
                 for path in (ROOT / folder).rglob("*.py")
                 if path.name != "test_layout.py"
                 and any(needle in path.read_text(encoding="utf-8") for needle in outside)]
    assert offenders == []
