"""LangGraph graphs, one per file, each built by a factory ``build_*_graph(deps)``.

- ``collect``: one round's training data from the student's own attempts
  (retrieve/recall workflows → generate → verify → critique → self-review →
  self-debug → inject errors → store → induce workflows; the optional steps are in
  ``collect_agents``).
- ``round``: evaluate → collect → augment → train (curated) → evaluate → gate,
  repeated (task choice, augmentation and curation in ``round_agents``).

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
