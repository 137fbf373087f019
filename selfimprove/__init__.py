"""selfimprove: a language model improves itself in gated rounds.

    import selfimprove as si

    rounds = si.run_loop(si.demo_config(rounds=2, out_dir="runs/mine"))
    run = si.Run("runs/mine")            # read and steer a run folder from any process
    run.status(); run.approve()

Importing the package sets the offline/telemetry environment defaults the stack
needs (see ``selfimprove.config.setup_environment``) before anything heavy loads;
the API's names (``selfimprove.api``) load on first use.
"""

from selfimprove.config import setup_environment as _setup_environment

_setup_environment()

from selfimprove.config import Config, ConfigError, load_config  # noqa: E402
from selfimprove.types import Attempt, Completion, Example, Task, Verdict  # noqa: E402

__all__ = [
    "ApprovalDecision",
    "ApprovalRequest",
    "Attempt",
    "Completion",
    "Config",
    "ConfigError",
    "Event",
    "EventLog",
    "Example",
    "LoopHandle",
    "Run",
    "RunError",
    "RunStateError",
    "RunStatus",
    "Task",
    "Verdict",
    "critique",
    "demo_config",
    "generate",
    "induce_workflows",
    "inject_errors",
    "load_config",
    "run_baseline",
    "run_loop",
    "run_round",
    "self_debug",
    "start_loop",
    "verify",
    "verify_solutions",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name in __all__:  # the API's names; the eager ones above never reach here
        from selfimprove import api

        return getattr(api, name)
    raise AttributeError(f"module 'selfimprove' has no attribute {name!r}")
