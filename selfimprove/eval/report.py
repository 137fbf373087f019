"""Run reports: ``report.json``, PNG plots and a Markdown summary, rewritten after every round.

``report.json`` has the shape the CLI, console and REST API read::

    {"rounds": [{"round": 0, "promoted": true, "metrics": {"heldout_pass_at_1": 0.21, ...},
                 "counts": {...}, "train_loss": [...], "reasons": [...],
                 "timings": {"evaluate": 95.1, ...},
                 "usage": {"calls": 3, "prompt_tokens": 5200, "completion_tokens": 9100,
                           "cost_usd": 0.0, "unpriced_calls": 0}}, ...]}

Round 0 is the baseline (the starting model, promoted by definition). Files are
written atomically (temp file + rename), so a reader never sees half a report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import get_args

from pydantic import BaseModel, Field

from selfimprove.eval.evaluate import EvalReport
from selfimprove.files import write_text_atomic
from selfimprove.types import ExampleKind

PLOTS = ("accuracy.png", "examples.png", "train_loss.png")
EXAMPLE_KINDS = get_args(ExampleKind)  # a round's counts[kind]: its examples of that kind


class RoundRecord(BaseModel):
    """One row of the report: what a round measured and decided."""

    round: int = Field(ge=0)
    promoted: bool
    metrics: dict[str, float]
    counts: dict[str, int] = Field(default_factory=dict)
    train_loss: list[float] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    model_path: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per stage
    # Model calls, prompt/completion tokens and cost_usd spent (models.base.Usage fields).
    usage: dict[str, float] = Field(default_factory=dict)


def eval_metrics(report: EvalReport) -> dict[str, float]:
    """Flat metrics of an evaluation: overall and per-suite pass@1 (and pass@k when sampled)."""
    metrics = {"heldout_pass_at_1": report.pass_at_1}
    for name, suite in report.suites.items():
        metrics[f"{name}_pass_at_1"] = suite.pass_at_1
        for k, value in suite.pass_at_k.items():
            if k > 1:
                metrics[f"{name}_pass_at_{k}"] = value
    return metrics


def write_report(out_dir: str | Path, rounds: Sequence[RoundRecord], *, title: str = "") -> Path:
    """Write ``report.json``, the plots and ``summary.md`` into ``out_dir``; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(rounds, key=lambda r: r.round)
    payload = {"title": title, "rounds": [r.model_dump() for r in rows]}
    path = write_text_atomic(out / "report.json", json.dumps(payload, indent=2) + "\n")
    _plot(out, rows)
    write_text_atomic(out / "summary.md", summary_markdown(rows, title=title))
    return path


def read_report(path: str | Path) -> list[RoundRecord]:
    """The rounds of a ``report.json``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [RoundRecord.model_validate(r) for r in data["rounds"]]


def suite_names(rows: Sequence[RoundRecord]) -> list[str]:
    """The suites (and ``guard``) the rounds report a pass@1 for, besides the overall one."""
    keys = {k for r in rows for k in r.metrics if k.endswith("_pass_at_1")}
    return sorted({k.removesuffix("_pass_at_1") for k in keys} - {"heldout"})


def summary_markdown(rows: Sequence[RoundRecord], *, title: str = "") -> str:
    """A short Markdown table: one line per round, with the gate's decision."""
    suites = suite_names(rows)
    head = ["round", "promoted", "held-out pass@1", *suites, "new examples", "minutes", "tokens"]
    lines = [f"# {title or 'selfimprove run'}", "", "| " + " | ".join(head) + " |"]
    lines.append("|" + "---|" * len(head))
    for r in rows:
        cells = [
            str(r.round),
            "baseline" if r.round == 0 else ("yes" if r.promoted else "no (rolled back)"),
            f"{r.metrics.get('heldout_pass_at_1', 0.0):.1%}",
            *(f"{r.metrics.get(f'{s}_pass_at_1', 0.0):.1%}" for s in suites),
            str(r.counts.get("new", "")),
            f"{sum(r.timings.values()) / 60:.1f}" if r.timings else "",
            spent(r.usage),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    decisions = [f"- round {r.round}: " + "; ".join(r.reasons) for r in rows if r.reasons]
    if decisions:
        lines += ["", "Gate decisions:", *decisions]
    agents = [f"- round {r.round}: " + "; ".join(a) for r in rows if (a := agent_summary(r.counts))]
    if agents:
        lines += ["", "Agents:", *agents]
    return "\n".join(lines) + "\n"


def spent(usage: Mapping[str, float]) -> str:
    """Model tokens of a ``usage`` dict, and the cost where a provider priced any call:
    ``12,345`` or ``12,345 ($0.02)``; empty when nothing was recorded."""
    if not usage:
        return ""
    tokens = usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    cost = usage.get("cost_usd", 0.0)
    return f"{tokens:,.0f}" + (f" (${cost:.2f})" if cost else "")


def critic_scores(counts: Mapping[str, int]) -> dict[str, float]:
    """Precision and recall of the critic's "wrong" calls against the verifier, where defined."""
    tp, fp, fn = (counts.get(f"critic/{k}", 0) for k in ("tp", "fp", "fn"))
    scores = {}
    if tp + fp:
        scores["critic_precision"] = tp / (tp + fp)
    if tp + fn:
        scores["critic_recall"] = tp / (tp + fn)
    return scores


def agent_summary(counts: Mapping[str, int]) -> list[str]:
    """What each agent did in a round, in a few words each, from the round's counts."""
    c, parts = counts, []
    if "self_debug/debugged" in c:
        parts.append(
            f"self-debug fixed {c.get('self_debug/wrong_to_right', 0)}/{c['self_debug/debugged']}"
        )
    if "review/reviewed" in c:
        parts.append(
            f"self-review of {c['review/reviewed']}: right→wrong {c.get('review/right_to_wrong', 0)}, "
            f"wrong→right {c.get('review/wrong_to_right', 0)}"
        )
    if "critic/critiqued" in c:
        scores = critic_scores(c)
        shown = ", ".join(f"{k.removeprefix('critic_')} {v:.0%}" for k, v in scores.items())
        parts.append(
            f"critic parsed {c.get('critic/parsed', 0)}/{c['critic/critiqued']}"
            + (f" ({shown})" if shown else "")
        )
    yields = sorted(k.split("/")[1] for k in c if k.startswith("inject/") and k.endswith("/tried"))
    if yields:
        shown = ", ".join(
            f"{n} {c.get(f'inject/{n}/failing', 0)}/{c[f'inject/{n}/tried']}" for n in yields
        )
        parts.append(f"injection yield {shown}")
    if "workflows/used" in c:
        parts.append(
            f"workflows in {c['workflows/used']} tasks, {c.get('workflows/new', 0)} new, "
            f"{c.get('workflows/retired', 0)} retired"
        )
    if "augment/tasks" in c:
        parts.append(f"{c['augment/tasks']} new tasks from {c.get('augment/failed', 0)} failures")
    dropped = {k.removeprefix("curate/"): v for k, v in c.items() if k.startswith("curate/")}
    if dropped:
        parts.append("curation " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    return parts


def _plot(out: Path, rows: Sequence[RoundRecord]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    rounds = [r.round for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    keys = sorted({k for r in rows for k in r.metrics if k.endswith("_pass_at_1")})
    for key in keys:
        overall = key == "heldout_pass_at_1"
        ax.plot(
            rounds,
            [r.metrics.get(key, float("nan")) for r in rows],
            marker="o",
            linewidth=2.5 if overall else 1.0,
            label="overall" if overall else key.removesuffix("_pass_at_1"),
        )
    for r in rows:
        if not r.promoted:
            ax.axvline(r.round, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="round (dotted: rolled back)", ylabel="held-out pass@1", ylim=(0, 1))
    ax.set_xticks(rounds)
    ax.legend(fontsize=8)
    _save(fig, out / "accuracy.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    kinds = [k for k in EXAMPLE_KINDS if any(r.counts.get(k) for r in rows)]
    bottom = [0] * len(rows)
    for kind in kinds:
        values = [r.counts.get(kind, 0) for r in rows]
        ax.bar(rounds, values, bottom=bottom, label=kind)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set(xlabel="round", ylabel="examples stored")
    ax.set_xticks(rounds)
    if kinds:
        ax.legend(fontsize=8)
    _save(fig, out / "examples.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        if r.train_loss:
            ax.plot(range(1, len(r.train_loss) + 1), r.train_loss, label=f"round {r.round}")
    ax.set(xlabel="logged step", ylabel="train loss")
    if any(r.train_loss for r in rows):
        ax.legend(fontsize=8)
    _save(fig, out / "train_loss.png")


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.tight_layout()
    fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    tmp.replace(path)
