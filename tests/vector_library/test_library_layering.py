"""Layering: the library imports no torch and no gradio (it needs no model)."""

from __future__ import annotations

import subprocess
import sys


def test_vector_library_and_db_import_no_torch_or_gradio():
    code = ("import sys; import vector_library, vector_library.hub, db, db.migrate;"
            "print(sorted(m for m in ('torch', 'gradio', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
