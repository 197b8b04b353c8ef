"""The statistics the benchmark tables print: percentiles and the "p50 / p95" cell."""

from __future__ import annotations

import numpy as np


def pct(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default); NaN for no values."""
    return float(np.percentile(values, q)) if values else float("nan")


def p50_p95(values: list[float], digits: int = 0) -> str:
    """``"p50 / p95"`` of the values, rounded to ``digits``; ``-`` for none."""
    if not values:
        return "-"
    return f"{pct(values, 50):.{digits}f} / {pct(values, 95):.{digits}f}"
