"""The synthetic style benchmark: exact (raw, stylized, t_ns, t_sty, refs) pairs, no download.

Every scene (synthetic_scenes) is rendered once and stylized with every style (synthetic_styles).
The K references of a pair are its style applied to the first frames of K other scenes (seeds
outside the scene range), so they share the style and never the content. A fixed fraction of the
scenes, chosen by the seed, is held out with all its pairs (split "heldout"): their content is
never seen in training. Pair ids are `syn-s<scene>-<style>`; building into a folder that already
holds some of them writes only the missing ones.
"""
import numpy as np

from .dataset_writer import DatasetWriter, PairData
from .synthetic_scenes import make_scene
from .synthetic_styles import STYLES

REF_SEED_BASE = 1 << 40  # reference scenes live far from the content scenes' seeds


def scene_seed(seed, index):
    return seed * 1_000_003 + index


def heldout_scenes(scenes, heldout, seed):
    """Indices of the held-out scenes: round(heldout * scenes), at least one when 0 < heldout and scenes > 1."""
    if not 0 <= heldout < 1:
        raise ValueError(f"heldout: expected a fraction in [0, 1), got {heldout}")
    n = int(round(heldout * scenes))
    if heldout > 0 and scenes > 1:
        n = max(n, 1)
    return set(np.random.default_rng([seed, 7]).permutation(scenes)[:n].tolist())


def pair_id(index, style):
    return f"syn-s{index:05d}-{style}"


def style_references(style, k, seed, frames=1, height=64, width=64):
    """K reference images: STYLE applied to frame 0 of K scenes drawn from SEED."""
    seeds = np.random.default_rng([seed, 11]).integers(0, 1 << 30, k)
    return [STYLES[style].apply(make_scene(REF_SEED_BASE + int(s), frames, height, width).frame(0)[None])[0]
            for s in seeds]


def synthetic_pairs(scenes=8, styles=None, frames=17, height=64, width=64, refs=3, heldout=0.25, seed=0, fps=16.0,
                    skip=()):
    """Yield PairData one at a time (ids in SKIP are not rendered)."""
    styles = list(STYLES) if styles is None else list(styles)
    unknown = [s for s in styles if s not in STYLES]
    if unknown:
        raise ValueError(f"styles: unknown {unknown}; expected some of {list(STYLES)}")
    held = heldout_scenes(scenes, heldout, seed)
    for i in range(scenes):
        todo = [s for s in styles if pair_id(i, s) not in skip]
        if not todo:
            continue
        scene = make_scene(scene_seed(seed, i), frames, height, width)
        raw = scene.render()
        meta = {"source": "synthetic", "scene_seed": scene.seed, "background": scene.background,
                "background_velocity": list(scene.bg_velocity),
                "trajectories": [[list(p) for p in traj] for traj in scene.trajectories()]}
        for name in todo:
            style = STYLES[name]
            yield PairData(pair_id(i, name), raw, style.apply(raw),
                           style_references(name, refs, [seed, i, list(STYLES).index(name)], 1, height, width),
                           caption_ns=scene.caption, caption_sty=f"{scene.caption}, {style.phrase}", fps=fps,
                           split="heldout" if i in held else "train", meta={**meta, "style": name})


def build_synthetic_benchmark(folder, scenes=8, styles=None, frames=17, height=64, width=64, refs=3, heldout=0.25,
                              seed=0, progress=None):
    """Write the benchmark into FOLDER (resuming); returns counts. PROGRESS(done, total) per pair."""
    writer = DatasetWriter(folder)
    styles = list(STYLES) if styles is None else list(styles)
    total = scenes * len(styles)
    present = {pair_id(i, s) for i in range(scenes) for s in styles if pair_id(i, s) in writer}
    done, written = len(present), 0
    if progress:
        progress(done, total)
    for pair in synthetic_pairs(scenes, styles, frames, height, width, refs, heldout, seed, skip=present):
        written += writer.append(pair)
        done += 1
        if progress:
            progress(done, total)
    return {"folder": writer.folder, "pairs": total, "written": written, "skipped": len(present)}
