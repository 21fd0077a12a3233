"""Statistics for classification errors: binomial confidence intervals and McNemar's paired test."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ErrorRate:
    errors: int
    n: int
    low: float  # 95% Clopper-Pearson interval, as fractions
    high: float

    @property
    def rate(self) -> float:
        return self.errors / self.n if self.n else float("nan")

    def text(self) -> str:
        """'2.12 [1.50, 2.90]' in percent."""
        return f"{100 * self.rate:.2f} [{100 * self.low:.2f}, {100 * self.high:.2f}]"


def error_rate(wrong: np.ndarray, confidence: float = 0.95) -> ErrorRate:
    """Error count, rate and exact binomial confidence interval of a boolean 'wrong' vector."""
    wrong = np.asarray(wrong, dtype=bool)
    k, n = int(wrong.sum()), int(wrong.size)
    if n == 0:
        return ErrorRate(0, 0, float("nan"), float("nan"))
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return ErrorRate(k, n, float(ci.low), float(ci.high))


@dataclass(frozen=True)
class McNemar:
    only_a_wrong: int  # a wrong, b right
    only_b_wrong: int
    p_value: float


def mcnemar(wrong_a: np.ndarray, wrong_b: np.ndarray) -> McNemar:
    """Exact McNemar test on paired outcomes (same inputs, two methods): binomial on discordant pairs."""
    a, b = np.asarray(wrong_a, dtype=bool), np.asarray(wrong_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes must have the same shape, got {a.shape} and {b.shape}")
    n01, n10 = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if n01 + n10 == 0 else float(stats.binomtest(n01, n01 + n10, 0.5).pvalue)
    return McNemar(n01, n10, p)
