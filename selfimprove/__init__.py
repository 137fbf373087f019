"""selfimprove: a language model improves itself in gated rounds.

Importing the package sets the offline/telemetry environment defaults the stack
needs (see ``selfimprove.config.setup_environment``) before anything heavy loads.
"""

from selfimprove.config import setup_environment as _setup_environment

_setup_environment()

from selfimprove.config import Config, ConfigError, load_config  # noqa: E402
from selfimprove.types import Attempt, Completion, Example, Task, Verdict  # noqa: E402

__all__ = [
    "Attempt",
    "Completion",
    "Config",
    "ConfigError",
    "Example",
    "Task",
    "Verdict",
    "load_config",
]
__version__ = "0.1.0"
