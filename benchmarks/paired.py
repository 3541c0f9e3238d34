"""Paired statistics for runs that share seeds and data: per-seed differences, their mean, a Student-t
confidence interval and p-value, and the sign of every seed. Pure Python (no SciPy): Student's t through
the regularized incomplete beta function (continued fraction, as in Numerical Recipes' ``betacf``)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the regularized incomplete beta function, for 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # the continued fraction converges fast on this side only
        return 1.0 - _incomplete_beta(b, a, 1.0 - x)
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 400):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return front * result / a


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom."""
    return _incomplete_beta(df / 2, 0.5, df / (df + t * t))


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom (by bisection)."""
    lo, hi = 0.0, 1e6
    for _ in range(200):
        mid = (lo + hi) / 2
        if 1 - t_two_sided_p(mid, df) / 2 < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass(frozen=True)
class Paired:
    """Per-seed differences a - b of two results that share seeds (and data)."""

    differences: tuple[float, ...]
    mean: float
    ci_low: float  # 95% Student-t interval of the mean difference
    ci_high: float
    t: float
    p: float  # two-sided
    positive: int  # seeds where a > b

    @property
    def seeds(self) -> int:
        return len(self.differences)

    def row(self, label: str) -> str:
        signs = "".join("+" if d > 0 else "-" if d < 0 else "0" for d in self.differences)
        return (f"| {label} | {self.mean:+.4f} | [{self.ci_low:+.4f}, {self.ci_high:+.4f}] | {self.t:+.2f} | "
                f"{self.p:.3f} | {signs} | " + ", ".join(f"{d:+.4f}" for d in self.differences) + " |")


def paired(a: list[float], b: list[float]) -> Paired:
    """The paired comparison of ``a`` and ``b`` (same seeds, same order): t = mean / (sd / sqrt(n)), n - 1
    degrees of freedom."""
    diffs = tuple(x - y for x, y in zip(a, b, strict=True))
    n = len(diffs)
    if n < 2:
        raise ValueError("a paired comparison needs two seeds or more")
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    half = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
    t = mean / (sd / math.sqrt(n)) if sd > 0 else math.copysign(math.inf, mean) if mean else 0.0
    p = t_two_sided_p(t, n - 1) if math.isfinite(t) else 0.0
    return Paired(diffs, mean, mean - half, mean + half, t, p, sum(d > 0 for d in diffs))


HEADER = ("| a - b | mean | 95% CI (paired t) | t | p | sign per seed | per seed |\n"
          "|---|---:|---|---:|---:|---|---|")
