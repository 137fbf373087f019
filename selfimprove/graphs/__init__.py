"""LangGraph graphs, one per file, each built by a factory ``build_*_graph(deps)``.

- ``collect``: one round's training data from the student's own attempts
  (retrieve → generate → verify → self-debug → inject errors → store).
- ``round``: evaluate → collect → train → evaluate → gate, repeated.

    from selfimprove.graphs import CollectDeps, CollectSettings, build_collect_graph
"""

from selfimprove.graphs.collect import (
    CollectDeps,
    CollectSettings,
    CollectState,
    build_collect_graph,
    collect,
    collect_input,
    make_collector,
)

__all__ = [
    "CollectDeps",
    "CollectSettings",
    "CollectState",
    "build_collect_graph",
    "collect",
    "collect_input",
    "make_collector",
]
