"""Which style condition a DreamStyle training batch uses: text, style image or first frame.

DreamStyle "Loss & Training": each batch samples its style condition with the preset ratio
text : style image : first frame = 1 : 2 : 1.
- text:        caption t_sty (with the style words), no image condition;
- style image: caption t_ns, a style reference appended (z^s) plus its CLIP-vision features;
- first frame: caption t_ns, the stylized first frame prepended (z^1st).
The choice is a pure function of (seed, step, micro-batch), so a resumed or distributed run draws
exactly the conditions an uninterrupted single-process run draws.
"""
import numpy as np

CONDITIONS = ("text", "style_image", "first_frame")
DEFAULT_RATIO = (1, 2, 1)


def parse_ratio(ratio, what="ratio"):
    """"1:2:1", (1, 2, 1) or [1, 2, 1] -> a tuple of three non-negative floats with a positive sum."""
    if isinstance(ratio, str):
        parts = ratio.replace(",", ":").split(":")
    else:
        parts = list(ratio)
    try:
        values = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected three numbers text:style_image:first_frame such as 1:2:1, "
                         f"got {ratio!r}") from None
    if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"{what}: expected three non-negative numbers text:style_image:first_frame with a "
                         f"positive sum, such as 1:2:1, got {ratio!r}")
    return values


class ConditionSampler:
    def __init__(self, ratio=DEFAULT_RATIO, seed=0, available=CONDITIONS):
        weights = np.array(parse_ratio(ratio), np.float64)
        weights *= np.array([c in available for c in CONDITIONS], np.float64)
        if weights.sum() <= 0:
            raise ValueError(f"ratio {ratio!r}: every condition with a positive weight is unavailable "
                             f"(available: {', '.join(available)})")
        self.p = weights / weights.sum()
        self.seed = seed

    def choose(self, step, micro=0):
        """The condition of micro-batch MICRO of optimizer step STEP."""
        rng = np.random.default_rng([self.seed, 101, step, micro])
        return CONDITIONS[int(rng.choice(len(CONDITIONS), p=self.p))]
