"""The project's graphs for LangGraph's dev server and Studio (``langgraph.json``).

    pip install "langgraph-cli[inmem]"              # not a dependency of selfimprove
    langgraph dev --allow-blocking                  # Studio on round, collect and operator
    SELFIMPROVE_CONFIG=run.yaml langgraph dev --allow-blocking   # a run config, not the demo's

``--allow-blocking``: the factories open the store and load the student with
ordinary blocking calls, which the dev server refuses by default. Checked by hand
with langgraph-cli 0.4.40 (langgraph-api 0.16.7): the server lists the three
graphs and draws each one's nodes.

Each entry of ``langgraph.json`` names a factory here; the server calls it (with
its ``RunnableConfig``, unused) and supplies the checkpointer. The config comes
from ``$SELFIMPROVE_CONFIG`` (a YAML run config), else ``demo_config()`` writing
to ``runs/studio``. The real parts (sandbox pool, store, task set) are opened on
the first call and kept open for the life of the process.

- ``round``: the gated loop; start it with ``{"round": 0, "incumbent": "<model>",
  "records": []}`` (``selfimprove.graphs.round.initial_state``). With
  ``loop.require_approval`` Studio shows the gate's interrupt to resume.
- ``collect``: one round of data collection with the configured student; input
  ``{"tasks": [<Task as a dict>, ...]}``.
- ``operator``: the console's chat agent over the run folder; its model is
  ``console.operator`` (without one it answers with how to configure one).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import RunnableConfig

from selfimprove.config import Config, load_config, secret
from selfimprove.loop import collect_settings

STUDIO_OUT = Path("runs/studio")
_open = contextlib.ExitStack()  # the real parts, closed when the process exits
atexit.register(_open.close)


def studio_config() -> Config:
    """``$SELFIMPROVE_CONFIG`` loaded, else the demo's config writing to ``runs/studio``."""
    from selfimprove.api import demo_config

    path = secret("SELFIMPROVE_CONFIG")
    return load_config(path) if path else demo_config(out_dir=STUDIO_OUT)


def round_graph(config: RunnableConfig | None = None) -> Any:
    """The round graph over the real parts of ``studio_config()``."""
    from selfimprove.graphs.round import build_round_graph

    return build_round_graph(_deps(secret("SELFIMPROVE_CONFIG") or ""))


def collect_graph(config: RunnableConfig | None = None) -> Any:
    """The collect graph with the configured student (loaded once) and the real parts."""
    from selfimprove.graphs.collect import CollectDeps, build_collect_graph

    deps = _deps(secret("SELFIMPROVE_CONFIG") or "")
    settings = collect_settings(deps.config)
    student = _student(secret("SELFIMPROVE_CONFIG") or "")
    return build_collect_graph(
        CollectDeps(student, deps.grader, deps.store, settings, deps.teacher, deps.workflows)
    )


def operator_graph(config: RunnableConfig | None = None) -> Any:
    """The console's operator agent over the run in ``loop.out_dir``."""
    from selfimprove.console.llm import LiteLLMChat
    from selfimprove.console.operator import build_operator_graph
    from selfimprove.runs import Run

    settings = studio_config()
    operator = settings.console.operator
    model = LiteLLMChat.from_config(operator) if operator.model else NoOperatorModel()
    return build_operator_graph(Run(settings.loop.out_dir), model)


@functools.cache
def _deps(source: str) -> Any:
    """The round graph's real parts for the config at ``source`` ("" the demo's), opened once."""
    from selfimprove.loop import real_deps

    return _open.enter_context(real_deps(studio_config(), show_progress=False))


@functools.cache
def _student(source: str) -> Any:
    from selfimprove.models.student import resolve_model_path

    deps = _deps(source)
    return deps.load_model(resolve_model_path(deps.config.student.model))


class NoOperatorModel(BaseChatModel):
    """Stands in for an unconfigured operator model: says how to configure one."""

    @property
    def _llm_type(self) -> str:
        return "no-operator-model"

    def bind_tools(self, tools: Any, **kwargs: Any) -> NoOperatorModel:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        from selfimprove.console.operator import NO_MODEL

        return ChatResult(generations=[ChatGeneration(message=AIMessage(NO_MODEL))])
