"""compress_core must never import Streamlit (DESIGN.md: imports go one way)."""

import pkgutil
import subprocess
import sys

import compress_core
from tests.conftest import ROOT


def test_no_compress_core_module_imports_streamlit():
    names = [
        m.name
        for m in pkgutil.walk_packages(compress_core.__path__, "compress_core.")
        if m.name != "compress_core.__main__"
    ]
    code = (
        "import importlib, sys\n"
        + "".join(f"importlib.import_module({n!r})\n" for n in names)
        + "print('streamlit' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False", f"one of {names} imported streamlit"
