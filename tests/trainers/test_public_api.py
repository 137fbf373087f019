"""The public names of selfimprove.trainers resolve, and reading a manifest stays light."""

from __future__ import annotations

import subprocess
import sys

import selfimprove.trainers as trainers


def test_all_is_sorted_and_every_public_name_resolves() -> None:
    assert trainers.__all__ == sorted(trainers.__all__)
    assert set(trainers.__all__) == set(trainers._HOMES)
    for name in trainers.__all__:
        assert getattr(trainers, name) is not None


def test_reading_manifests_does_not_import_trl() -> None:
    code = (
        "import sys; from selfimprove.trainers import load_manifest, TrainResult; "
        "print(sorted(m for m in ('trl', 'torch', 'peft', 'datasets') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
