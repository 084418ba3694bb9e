"""Invariant checks shared by the benchmarks (this module is a helper, not a benchmark).

Every benchmark's ``--quick`` mode runs its full code path on tiny inputs and checks what must
hold whatever the timings: rows that compare two implementations return equal outputs, figures
lie in their range. A violation ends the process with a non-zero status, so CI fails.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

THRESHOLD_KEYS = ("P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9")


def require(ok: bool, message: str) -> None:
    """End the process with status 1 and ``message`` unless ``ok``."""
    if not ok:
        print(f"INVARIANT VIOLATED: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1)


def check_metrics(name: str, metrics: Mapping[str, float]) -> None:
    """Segmentation figures are fractions in [0, 1] and P@K never rises with K."""
    for key, value in metrics.items():
        if key == "num_samples":
            continue
        require(
            math.isfinite(value) and 0.0 <= value <= 1.0,
            f"{name}: {key} = {value} is not a fraction in [0, 1]",
        )
    ladder = [metrics[k] for k in THRESHOLD_KEYS if k in metrics]
    require(
        all(a >= b for a, b in zip(ladder, ladder[1:], strict=False)),
        f"{name}: P@K rises with K: {ladder}",
    )


def passed(name: str, seconds: float) -> None:
    """The line CI greps for: the quick mode ran and every invariant held."""
    print(f"{name}: invariants hold ({seconds:.1f} s)", flush=True)
