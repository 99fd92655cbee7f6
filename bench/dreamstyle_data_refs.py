"""Style references from the same clip (the paper) or from other clips of the same style: the trade-off
on the synthetic benchmark (toy scenes x styles palette, ink, hatching, halftone, thermal; 17 frames 64x64).

For every pair, K = 3 references either as the shipped graph takes them (the stylized clip's frames 8..10)
or from three other scenes in the same style (the benchmark's own references). Side by side:
- style agreement: dreamstyle.pair_scores.style_score(stylized video, references) (the offline proxy);
- content leakage: layout content_score between each reference and the stylized first frame (how much of
  the video's content a style-image condition carries besides its style).
"""
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._timing import metric  # noqa: E402

K, FIRST_REF = 3, 8


def run():
    from dreamstyle.pair_scores import content_score, style_score
    from dreamstyle.synthetic_benchmark import synthetic_pairs
    rows = {"same": [], "other": []}
    for p in synthetic_pairs(scenes=4, frames=17, height=64, width=64, refs=K, heldout=0.0, seed=5):
        sty = np.asarray(p.stylized)
        same = sty[FIRST_REF:FIRST_REF + K]
        other = np.stack(p.refs)
        for kind, refs in (("same", same), ("other", other)):
            leak = np.mean([content_score(sty[0][None], r[None]) for r in refs])
            rows[kind].append((style_score(sty, refs), leak))
    mean = {k: np.mean(v, axis=0) for k, v in rows.items()}
    how = (f"{len(rows['same'])} synthetic pairs (4 scenes x 5 styles, 17x64x64), K={K}: same-clip references "
           f"(stylized frames {FIRST_REF}..{FIRST_REF + K - 1}) vs references from 3 other scenes in the same style")
    return {
        "dreamstyle_data_refs_same_clip_style_score": metric(mean["same"][0], "report", "cosine", how),
        "dreamstyle_data_refs_other_clips_style_score": metric(mean["other"][0], "report", "cosine", how),
        "dreamstyle_data_refs_same_clip_content_leak": metric(mean["same"][1], "report", "correlation",
                                                              how + "; layout correlation reference vs first frame"),
        "dreamstyle_data_refs_other_clips_content_leak": metric(mean["other"][1], "report", "correlation",
                                                                how + "; layout correlation reference vs first frame"),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
