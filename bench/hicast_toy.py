"""HiCAST learning evidence: the toy trained by scripts/train_toy_hicast.py (assets/hicast_toy), re-evaluated here.

Loads the pinned files (sha256 in assets/hicast_toy/eval.json) and reruns the script's evaluation on the
held-out scenes and style references (about half a minute on 2 CPU cores): img2img with the trained edge
adapter and style tokens, per style (palette, thermal).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FOLDER = os.path.join(ROOT, "assets", "hicast_toy")


def run():
    if not os.path.exists(os.path.join(FOLDER, "eval.json")):
        raise FileNotFoundError(f"{FOLDER}: no trained toy; run scripts/train_toy_hicast.py (writes it there) first")
    import numpy as np
    import torch
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    from scripts.train_toy_hicast import evaluate, load_toy, trained_knobs
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    base, levels, adapter, encoder, layers, tokens, trained = load_toy(FOLDER)
    per_style, _ = evaluate(base, levels, adapter, encoder, layers, tokens, trained_knobs(trained))
    mean = lambda k: float(np.mean([v[k] for v in per_style.values()]))  # noqa: E731
    styles = ", ".join(per_style)
    setup = trained["setup"]
    where = (f"toy SD1.5-topology UNetModel ({setup['unet']['model_channels']} ch, 32x32 images), {setup['eval_scenes']} "
             f"held-out scenes, styles {styles}; img2img t0 {setup['t0']}, DDIM {setup['ddim_steps']} steps, style "
             f"scale {setup['style_scale']} (t0 and scale chosen on validation scenes)")
    return {
        "hicast_toy_style_distance_drop": {
            "value": mean("style_distance_drop"), "goal": ">= 0.30", "unit": "fraction",
            "how": f"1 - d(output)/d(input), d = 1 - style_score to held-out references of the target style "
                   f"(dreamstyle.pair_scores); per style " +
                   ", ".join(f"{k} {v['style_distance_drop']:.3f} (d in {v['style_distance_input']:.3f}, out "
                             f"{v['style_distance_output']:.3f}, ground truth {v['style_distance_ground_truth']:.3f}; "
                             f"pixel error to the exact look {v['ground_truth_error_vs_input']:.2f}x the input's)"
                             for k, v in per_style.items()) + f"; {where}"},
        "hicast_toy_structure_vs_gt": {
            "value": mean("structure_vs_gt"), "goal": ">= 0.6", "unit": "ratio",
            "how": "Pearson correlation of soft-edge maps with the input's: output / ground truth (the look applied "
                   "exactly); per style " +
                   ", ".join(f"{k} {v['edge_structure_output']:.3f}/{v['edge_structure_ground_truth']:.3f}"
                             for k, v in per_style.items()) + f"; {where}"},
        "hicast_lh_flicker_ratio": {
            "value": mean("flicker_with_lh_layers") / mean("flicker_without_temporal"), "goal": "< 1.0", "unit": "ratio",
            "how": "mean |(out_f+1 - out_f) - (gt_f+1 - gt_f)| of 8-frame held-out clips stylized frame by frame with "
                   "independent noise: with the L_h-trained temporal layers / without temporal layers; per style " +
                   ", ".join(f"{k} {v['flicker_with_lh_layers']:.4f}/{v['flicker_without_temporal']:.4f}"
                             for k, v in per_style.items()) + f"; {where}"},
    }
