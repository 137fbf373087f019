"""Accuracy metrics: pass@k with the unbiased estimator, per-suite summaries."""

from __future__ import annotations

from math import comb


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn from ``n`` (``c`` correct) passes.

    The unbiased estimator of Chen et al. (2021): ``1 - C(n-c, k) / C(n, k)``.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c!r}, n={n!r}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k!r}, n={n!r}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
