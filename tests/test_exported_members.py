"""The public surface: `__all__` is sorted, resolves, and importing the package stays light."""

import subprocess
import sys

import selfimprove


def test_all_is_sorted_and_every_name_resolves():
    assert selfimprove.__all__ == sorted(selfimprove.__all__)
    for name in selfimprove.__all__:
        assert getattr(selfimprove, name) is not None, name


def test_importing_the_package_loads_no_heavy_library():
    code = (
        "import sys, selfimprove, selfimprove.tasks, selfimprove.models, selfimprove.sandbox;"
        "print(sorted(m for m in ('torch', 'transformers', 'litellm', 'chromadb', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
