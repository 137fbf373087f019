"""Train one round from the shell: ``python -m selfimprove.trainers``.

    python -m selfimprove.trainers --base smollm2-135m-instruct \\
        --sft data.jsonl --dpo pairs.jsonl --out runs/r1/model --config training.yaml

The same command runs on several GPUs under ``accelerate launch`` (configs and
notes in ``docs/accelerate/``):

    accelerate launch --config_file docs/accelerate/ddp.yaml -m selfimprove.trainers ...

``--config`` is a YAML file holding either ``TrainingConfig`` fields or a whole
run config with a ``training:`` section; ``--method`` and ``--max-steps``
override it. The JSONL files hold one row per line (``prompt``/``completion``
for SFT, ``prompt``/``chosen``/``rejected`` for DPO). The result is printed as
JSON on stdout (by the main process); user errors print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from selfimprove.config import TrainingConfig, format_validation_error


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m selfimprove.trainers",
        description="Train one round (SFT, DPO or SFT then DPO) and save the merged model.",
    )
    parser.add_argument("--base", required=True, help="model folder or embedded model name")
    parser.add_argument("--sft", type=Path, help="JSONL of prompt/completion rows")
    parser.add_argument("--dpo", type=Path, help="JSONL of prompt/chosen/rejected rows")
    parser.add_argument("--out", type=Path, required=True, help="new model folder")
    parser.add_argument("--config", type=Path, help="YAML with TrainingConfig fields")
    parser.add_argument("--method", choices=["sft", "dpo", "sft_dpo"], help="override method")
    parser.add_argument("--max-steps", type=int, help="override max_steps")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def load_training_config(
    path: Path | None, overrides: dict[str, Any] | None = None
) -> TrainingConfig:
    """A ``TrainingConfig`` from YAML (its fields, or a run config's ``training:``).

    Raises:
        ValueError: the file is unreadable, not a mapping, or holds an invalid value.
    """
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read training config {str(path)!r}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(
                f"training config {str(path)!r} must be a mapping of TrainingConfig fields, "
                f"got {type(data).__name__}"
            )
        data = data.get("training", data)
    data = {**data, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    try:
        return TrainingConfig.model_validate(data)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, repr(str(path or "arguments")))) from None


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = parse_args(argv)
    # Heavy imports after parsing, so --help is instant.
    from accelerate import PartialState

    from selfimprove.models.base import ModelError
    from selfimprove.models.student import resolve_model_path
    from selfimprove.trainers.data import read_jsonl
    from selfimprove.trainers.round import train_round

    try:
        config = load_training_config(
            args.config, {"method": args.method, "max_steps": args.max_steps}
        )
        base = resolve_model_path(args.base)
        sft = read_jsonl(args.sft) if args.sft else None
        dpo = read_jsonl(args.dpo) if args.dpo else None
        result = train_round(
            base,
            sft,
            dpo,
            config,
            args.out,
            progress=not args.no_progress,
            overwrite=args.overwrite,
        )
    except (ValueError, FileExistsError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if PartialState().is_main_process:
        print(result.model_dump_json(indent=2, exclude={"stages": {"__all__": {"history"}}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
