"""Keep or drop a candidate pair by its scores; the verdict carries the reason that gets logged.

DreamStyle keeps CT pairs whose CSD style score exceeds 0.5. Thresholds here apply to whatever
scores pair_scores produced (the offline default or a plugged-in embedder); a threshold of None is
not checked. The defaults suit the offline scores: on the synthetic benchmark a video scores about
0.87 against its own style's references, 0.50 against another style's and 0.51 unstylized; faithful
pairs have content about 0.56, mismatched ones 0.06. Calibrate on your own data.
"""
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class PairThresholds:
    min_style: Optional[float] = 0.7
    min_content: Optional[float] = 0.2


@dataclass(frozen=True)
class PairVerdict:
    passed: bool
    reason: str


def judge_pair(style, content, thresholds=PairThresholds()):
    """PairVerdict for scores STYLE and CONTENT: every failed threshold is named in the reason."""
    checks = [("style", style, thresholds.min_style), ("content", content, thresholds.min_content)]
    failed = [f"{name} score {value:.3f} < min_{name} {limit:.3f}" for name, value, limit in checks
              if limit is not None and not value >= limit]  # NaN fails
    if failed:
        return PairVerdict(False, "rejected: " + "; ".join(failed))
    held = ", ".join(f"{name} {value:.3f}" + (f" >= {limit:.3f}" if limit is not None else "")
                     for name, value, limit in checks)
    return PairVerdict(True, f"passed: {held}")
