"""The toy DreamStyle benchmark from the committed weights (assets/dreamstyle_toy): on the 8 held-out synthetic
pairs (style-image condition, 12 Euler steps), structure kept relative to the ground truth's and how much
closer to the target style the output gets than the raw input, for the token LoRA and the plain LoRA of the
same rank and training budget, side by side (scripts/train_toy_dreamstyle.evaluate).
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._timing import metric  # noqa: E402


def run():
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.utils
    import torch
    import scripts.train_toy_dreamstyle as toy
    from dreamstyle.training import loras_from_file
    torch.set_num_threads(1)
    out, work = os.path.join(ROOT, "assets", "dreamstyle_toy"), os.path.join(ROOT, "build", "dreamstyle_toy")
    ct, _, _, _ = toy.build_data(os.path.join(work, "data"), False)
    vae, clip, clip_features = toy.comfy_parts(comfy.utils.load_torch_file(
        os.path.join(out, "toy_wan21_vae.safetensors"), safe_load=True))
    enc = toy.encoders(vae, clip, clip_features)
    model = toy.new_dit()
    model.load_state_dict(comfy.utils.load_torch_file(os.path.join(out, "toy_wan21_i2v.safetensors"), safe_load=True))
    model.requires_grad_(False)
    res = {}
    for kind in ("token", "plain"):
        loras = loras_from_file(os.path.join(out, f"toy_dreamstyle_{kind}_lora.safetensors"), model)
        res[kind] = toy.evaluate(model, enc, vae, ct, loras, kind == "token", os.path.join(work, "cache"))
    how = ("8 held-out synthetic pairs (palette, thermal; 64x64, 5 frames), style-image condition, 12 Euler steps, "
           "committed toy weights; structure = content_score(raw, output) / content_score(raw, ground truth)")
    drop = "style distance drop = 1 - (1 - style_score(output, refs)) / (1 - style_score(raw, refs))"
    return {
        "dreamstyle_toy_structure_vs_gt": metric(res["token"]["content_out"] / res["token"]["content_target"],
                                                 ">= 0.6", "ratio", how + " (token LoRA)"),
        "dreamstyle_toy_style_distance_drop": metric(res["token"]["style_distance_reduction"], ">= 0.30", "fraction",
                                                     how + "; " + drop + " (token LoRA)"),
        "dreamstyle_toy_plain_lora_structure_vs_gt": metric(
            res["plain"]["content_out"] / res["plain"]["content_target"], "report", "ratio", how + " (plain LoRA)"),
        "dreamstyle_toy_plain_lora_style_distance_drop": metric(
            res["plain"]["style_distance_reduction"], "report", "fraction", how + "; " + drop + " (plain LoRA)"),
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
