"""Latency samples and their percentiles."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Latencies:
    def __init__(self) -> None:
        self.ms: list[float] = []

    @contextmanager
    def timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms.append((time.perf_counter() - started) * 1000)

    def summary(self) -> dict[str, float]:
        if not self.ms:
            return {"n": 0}
        return {"n": len(self.ms), "p50": round(percentile(self.ms, 50), 2), "p95": round(percentile(self.ms, 95), 2),
                "p99": round(percentile(self.ms, 99), 2), "mean": round(sum(self.ms) / len(self.ms), 2)}
