"""langgraph.json names real factories, and they build the graphs without loading a model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from selfimprove.testing import tiny_model

ROOT = Path(__file__).resolve().parents[2]


def _graphs() -> dict[str, str]:
    spec = json.loads((ROOT / "langgraph.json").read_text())
    assert spec["dependencies"] == ["."]
    return spec["graphs"]


def test_langgraph_json_names_callable_factories_in_existing_files() -> None:
    graphs = _graphs()
    assert set(graphs) == {"round", "collect", "operator"}
    for name, target in graphs.items():
        path, _, attr = target.partition(":")
        file = ROOT / path
        assert file.is_file(), f"{name}: {file} does not exist"
        spec = importlib.util.spec_from_file_location(f"studio_{name}", file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert callable(getattr(module, attr)), f"{name}: {attr} is not callable"


@pytest.fixture
def studio_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    config = {
        "student": {"model": str(tiny_model())},
        "tasks": {"suites": ["arithmetic"], "heldout_per_suite": 3, "train_per_suite": 3},
        "store": {"embedding": "hash", "path": str(tmp_path / "run" / "store")},
        "sandbox": {"workers": 1},
        "loop": {"out_dir": str(tmp_path / "run"), "rounds": 1},
    }
    path = tmp_path / "studio.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("SELFIMPROVE_CONFIG", str(path))
    return path


def test_the_round_graph_compiles_over_the_real_parts(studio_env: Path) -> None:
    from selfimprove.graphs.studio import round_graph

    graph = round_graph()
    nodes = set(graph.get_graph().nodes)
    assert {"baseline", "collect", "train", "evaluate", "gate", "report"} <= nodes
    assert round_graph({"configurable": {}}) is not graph  # built per call, parts shared


def test_the_operator_graph_without_a_model_says_how_to_configure_one(studio_env: Path) -> None:
    from selfimprove.graphs.studio import operator_graph

    graph = operator_graph()
    assert {"agent", "tools"} <= set(graph.get_graph().nodes)
    out = graph.invoke({"messages": [("user", "how is the run going?")]})
    assert "console.operator" in out["messages"][-1].content
