"""A loss-curve picture of a training run (PIL only): raw per-step loss in grey, a moving average in
blue, axes labelled with the step range and the loss range."""
import numpy as np
from PIL import Image, ImageDraw


def moving_average(values, window):
    values = np.asarray(values, np.float64)
    if len(values) == 0:
        return values
    window = max(1, min(window, len(values)))
    c = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def loss_curve_image(losses, width=512, height=320, title="loss"):
    """uint8 [height, width, 3] plot of LOSSES (one per optimizer step)."""
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, right, top, bottom = 56, width - 12, 24, height - 28
    draw.rectangle([left, top, right, bottom], outline=(0, 0, 0))
    losses = [float(v) for v in losses if np.isfinite(v)]
    if not losses:
        draw.text((left + 8, top + 8), "no steps yet", fill=(0, 0, 0))
        return np.asarray(img)
    lo, hi = min(losses), max(losses)
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    n = len(losses)

    def xy(i, v):
        x = left + (right - left) * (i / max(1, n - 1))
        y = bottom - (bottom - top) * ((v - lo) / (hi - lo))
        return x, y

    for series, colour, w in ((losses, (170, 170, 170), 1), (moving_average(losses, max(1, n // 20)), (30, 80, 200), 2)):
        pts = [xy(i, v) for i, v in enumerate(series)]
        if len(pts) == 1:
            draw.ellipse([pts[0][0] - 2, pts[0][1] - 2, pts[0][0] + 2, pts[0][1] + 2], fill=colour)
        else:
            draw.line(pts, fill=colour, width=w)
    draw.text((4, top - 4), f"{hi:.4g}", fill=(0, 0, 0))
    draw.text((4, bottom - 8), f"{lo:.4g}", fill=(0, 0, 0))
    draw.text((left, bottom + 6), "step 1", fill=(0, 0, 0))
    draw.text((right - 60, bottom + 6), f"step {n}", fill=(0, 0, 0))
    draw.text((left + 4, 4), f"{title}: last {losses[-1]:.4g}", fill=(0, 0, 0))
    return np.asarray(img)
