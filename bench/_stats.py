"""Small statistics for benchmark figures: run-to-run spread and latency percentiles."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from engine.execution.summary import percentile


@dataclass(frozen=True, slots=True)
class Spread:
    """Run-to-run figures of one quantity over repeats."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.values) if len(self.values) >= 2 else 0.0

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan

    @property
    def range(self) -> float:
        """max - min: the run-to-run noise the gate uses (0 with fewer than two runs)."""
        return self.high - self.low if len(self.values) >= 2 else 0.0

    @property
    def cv(self) -> float:
        return self.stdev / self.mean if self.values and self.mean else 0.0

    def text(self, fmt: str = ".2f", unit: str = "") -> str:
        if not self.values:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:{fmt}}{unit} (1 run: no spread)"
        return (f"{self.mean:{fmt}}{unit} mean, stdev {self.stdev:{fmt}} ({100 * self.cv:.1f}%), "
                f"range {self.low:{fmt}}..{self.high:{fmt}} over {self.n} runs")

    def as_dict(self) -> dict[str, float | list[float]]:
        return {"values": list(self.values), "mean": self.mean, "stdev": self.stdev, "low": self.low,
                "high": self.high}


def pcts(values: Iterable[float]) -> dict[str, float]:
    """n, p50, p95, p99 (nearest rank) of ``values``."""
    v = sorted(values)
    return {"n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95), "p99": percentile(v, 99)}


__all__ = ["Spread", "pcts"]
