"""DreamStyle inference costs, measured side by side on the CPU.

1. Token-LoRA layer forward (W x + s·W_up^i W_down x, routed by contiguous token runs) vs a plain LoRA of
   the same rank, and vs a naive router that computes every up matrix on every token and masks.
   Wan2.1-1.3B linear sizes (dim 1536, FFN 8960), rank 64, tokens of a 480p clip scaled down.
2. One denoising step of ComfyUI's own WanModel at 1.3B and at 14B block sizes: plain I2V on F latent
   frames vs DreamStyle (F + first frame + style image, token LoRA on) vs a UNIC-style in-context
   layout that doubles the sequence (reference video tokens concatenated with the generated ones).
3. Token LoRA vs plain LoRA on an fp8-stored layer (ComfyUI's manual_cast Linear, as UNETLoader fp8 runs).
4. Long-video seams with the toy DreamStyle model: warping error across seams vs inside chunks, Lab
   colour drift first -> last chunk, colour match off and on.
"""
import os
import statistics
import sys

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._timing import median_ratio, metric, samples_side_by_side, time_side_by_side  # noqa: E402
from dreamstyle.layout import STYLE_IMAGE, VIDEO, FIRST_FRAME  # noqa: E402
from dreamstyle.token_lora import TokenLoRA  # noqa: E402

DIM, FFN, RANK = 1536, 8960, 64
TOKENS_PER_FRAME_480P = 30 * 52  # 480x832 -> latent 60x104 -> (1,2,2) patches


def layer_benchmark(frames=3):
    torch.manual_seed(0)
    types = torch.tensor([FIRST_FRAME] + [VIDEO] * frames + [STYLE_IMAGE])
    n = TOKENS_PER_FRAME_480P
    x = torch.randn(1, types.numel() * n, DIM)
    results = {}
    for name, out_f in (("qkvo", DIM), ("ffn_up", FFN)):
        base = torch.nn.Linear(DIM, out_f)
        lora = TokenLoRA(DIM, out_f, RANK)
        torch.nn.init.normal_(lora.up, std=0.01)
        down, up = lora.down.detach(), lora.up[1].detach()
        mask = torch.stack([(types == t).repeat_interleave(n) for t in range(3)]).float()  # [3, L]

        def token():
            return lora.add_to(base(x), x, types, n)

        def plain():  # the same in-place accumulation, one up matrix for all tokens
            out = base(x)
            out.view(-1, out_f).addmm_(F.linear(x, down).view(-1, RANK), up.t())
            return out

        def naive():
            h = F.linear(x, down)
            return base(x) + sum(F.linear(h, lora.up[t]) * mask[t, :, None] for t in range(3))

        t = time_side_by_side({"token": token, "plain": plain, "naive": naive}, rounds=5)
        results[f"dreamstyle_token_lora_vs_plain_lora_{name}"] = metric(
            t["token"] / t["plain"], "<= 1.10", "ratio",
            f"layer forward {DIM}->{out_f}, rank {RANK}, {x.shape[1]} tokens (1+{frames}+1 frames of 480p); "
            f"token {t['token']*1e3:.1f} ms vs plain {t['plain']*1e3:.1f} ms")
        results[f"dreamstyle_token_lora_vs_naive_router_{name}"] = metric(
            t["token"] / t["naive"], "< 1.0", "ratio",
            f"same layer; naive computes all 3 up matrices on every token and masks ({t['naive']*1e3:.1f} ms)")
    return results


WAN_SIZES = {"1.3B": (1536, 8960, 12, 2, (16, 16)), "14B": (5120, 13824, 40, 1, (8, 8))}  # dim, ffn, heads, blocks, grid


def step_benchmark(size, frames=21):
    dim, ffn, heads, blocks, grid = WAN_SIZES[size]
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.ldm.wan.model as wan_model
    import comfy.ops
    torch.manual_seed(0)
    model = wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=dim, ffn_dim=ffn, num_heads=heads,
                               num_layers=blocks, text_dim=4096, freq_dim=256,
                               operations=comfy.ops.disable_weight_init).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    h, w = grid
    n = (h // 2) * (w // 2)
    context = torch.randn(1, 64, 4096)
    clip = torch.randn(1, 257, 1280)
    t = torch.tensor([500.0])
    loras = {name: TokenLoRA(m.in_features, m.out_features, RANK) for name, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and (".self_attn." in name and "norm" not in name or ".ffn." in name)}
    for lora in loras.values():
        torch.nn.init.normal_(lora.up, std=0.01)
    types = torch.tensor([FIRST_FRAME] + [VIDEO] * frames + [STYLE_IMAGE])
    hooks = []
    x_plain = torch.randn(1, 36, frames, h, w)
    x_dream = torch.randn(1, 36, frames + 2, h, w)
    x_unic = torch.randn(1, 36, 2 * frames, h, w)

    # plain and UNIC run without the LoRA hooks; DreamStyle with them
    def set_hooks(on):
        for hk in hooks:
            hk.remove()
        hooks.clear()
        if on:
            for name, lora in loras.items():
                hooks.append(model.get_submodule(name).register_forward_hook(
                    lambda m, a, o, lora=lora: lora.add_to(o, a[0], types, n)))

    def step(x, lora_on):
        def run():
            set_hooks(lora_on)
            return model(x, t, context, clip_fea=clip)
        return run

    tm = time_side_by_side({"plain": step(x_plain, False), "frames": step(x_dream, False),
                            "dream": step(x_dream, True), "unic": step(x_unic, False)}, rounds=5)
    set_hooks(False)
    goal = 1.05 * (frames + 2) / frames
    how = (f"WanModel {size} block sizes, {blocks} block(s), F={frames} latent frames (an 81-frame clip) of {n} tokens; "
           f"plain {tm['plain']:.3f}s, plain on F+2 frames without LoRA {tm['frames']:.3f}s "
           f"(x{tm['frames'] / tm['plain']:.3f}: the two extra frames, attention included), DreamStyle "
           f"{tm['dream']:.3f}s (x{tm['dream'] / tm['frames']:.3f} over that: the rank-{RANK} token LoRA), "
           f"UNIC-style 2F {tm['unic']:.3f}s")
    return {
        f"dreamstyle_step_vs_plain_i2v_step_{size}": metric(tm["dream"] / tm["plain"], f"<= {goal:.3f}", "ratio",
                                                             how + "; goal 1.05*(F+2)/F"),
        f"dreamstyle_step_vs_unic_in_context_step_{size}": metric(tm["dream"] / tm["unic"], "< 1.0", "ratio", how),
    }


def fp8_lora_benchmark(frames=3, rounds=21):
    """Token LoRA vs plain LoRA of the same rank on a layer whose weight is stored in fp8_e4m3fn and cast
    per forward by ComfyUI's manual_cast Linear (how UNETLoader weight_dtype=fp8 runs), 1.3B sizes."""
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.ops
    torch.manual_seed(0)
    types = torch.tensor([FIRST_FRAME] + [VIDEO] * frames + [STYLE_IMAGE])
    n = TOKENS_PER_FRAME_480P
    x = torch.randn(1, types.numel() * n, DIM)
    results = {}
    for name, out_f in (("qkvo", DIM), ("ffn_up", FFN)):
        layer = comfy.ops.manual_cast.Linear(DIM, out_f, dtype=torch.float8_e4m3fn)
        layer.weight = torch.nn.Parameter((torch.randn(out_f, DIM) * 0.02).to(torch.float8_e4m3fn), requires_grad=False)
        layer.bias = torch.nn.Parameter(torch.zeros(out_f), requires_grad=False)
        lora = TokenLoRA(DIM, out_f, RANK)
        torch.nn.init.normal_(lora.up, std=1e-3)
        down, up = lora.down.detach(), lora.up[1].detach()

        def token():
            with torch.no_grad():
                return lora.add_to(layer(x), x, types, n)

        def plain():
            with torch.no_grad():
                out = layer(x)
                out.view(-1, out_f).addmm_(F.linear(x, down).view(-1, RANK), up.t())
                return out

        load = os.getloadavg()[0]
        s = samples_side_by_side({"token": token, "plain": plain}, rounds=rounds)
        results[f"dreamstyle_token_lora_vs_plain_lora_fp8_base_{name}"] = metric(
            median_ratio(s, "token", "plain"), "<= 1.05", "ratio",
            f"fp8_e4m3fn weight through comfy.ops.manual_cast.Linear (fp32 compute on this CPU), {DIM}->{out_f}, "
            f"rank {RANK}, {x.shape[1]} tokens; median over {rounds} interleaved rounds of token/plain "
            f"(medians token {statistics.median(s['token'])*1e3:.1f} ms vs plain {statistics.median(s['plain'])*1e3:.1f} "
            f"ms; load average {load:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return results


def _warp_errors(video, out):
    """Mean |out[t+1] - warp(out[t])| per frame pair, the flow (OpenCV DIS) taken on the input video."""
    import cv2
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [cv2.cvtColor((f.numpy() * 255).astype("uint8"), cv2.COLOR_RGB2GRAY) for f in video]
    h, w = grey[0].shape
    import numpy as np
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    errors = []
    for t in range(len(grey) - 1):
        flow = dis.calc(grey[t + 1], grey[t], None)  # where each pixel of t+1 was in t
        warped = cv2.remap(out[t].numpy().astype(np.float32), xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        errors.append(float(np.abs(out[t + 1].numpy() - warped).mean()))
    return errors


def _lab_mean(frames):
    import cv2
    import numpy as np
    return np.mean([cv2.cvtColor(f.numpy().astype(np.float32), cv2.COLOR_RGB2LAB).reshape(-1, 3).mean(0)
                    for f in frames], axis=0)


def seam_benchmark(frames=17, chunk=5, overlap=1, steps=4):
    """Long video through DreamStyleLongVideo with the toy DreamStyle model (build/models): warping error
    across chunk seams vs inside chunks, and the Lab colour drift from the first to the last chunk (output
    drift minus the input's own), colour match off and on, side by side."""
    import numpy as np
    from scripts.comfy_root import import_comfy_in_process
    root = import_comfy_in_process()  # noqa: F841
    import comfy.sd
    import comfy.utils
    import folder_paths
    import nodes
    import importlib.util
    models = os.path.join(ROOT, "build", "models")
    for kind in ("diffusion_models", "vae", "loras"):
        folder_paths.add_model_folder_path(kind, os.path.join(models, kind), is_default=True)
    if "unistyle_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("unistyle_pack", os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules["unistyle_pack"] = module
        spec.loader.exec_module(module)
    from unistyle_pack.nodes import dreamstyle as ds
    from dreamstyle.long_video import plan_chunks
    from dreamstyle.synthetic_scenes import make_scene
    model = nodes.UNETLoader().load_unet("toy_dreamstyle_wan21_i2v.safetensors", "default")[0]
    model = ds.DreamStyleTokenLoRALoader.execute(model, "toy_dreamstyle_token_lora.safetensors", 1.0).result[0]
    vae = nodes.VAELoader().load_vae("toy_dreamstyle_wan21_vae.safetensors")[0]
    video = torch.from_numpy(np.asarray(make_scene(3, frames=frames).render(), dtype=np.float32) / 255.0)
    text = [[torch.zeros(1, 8, 4096), {}]]
    style = (1.0 - video[:1]).flip(-1)  # a stand-in style image: inverted, channels swapped
    outs = {}
    for match in (False, True):
        outs[match] = ds.DreamStyleLongVideo.execute(model, text, text, vae, video, chunk, overlap, 0, steps, 1.0,
                                                     "euler", "simple", style_image=style,
                                                     colour_match=match).result[0].detach().float().cpu()
    chunks = plan_chunks(frames, chunk, overlap)
    seam_pairs = {f for c, prev in zip(chunks[1:], chunks) for f in range(c.start - 1, prev.stop)}
    results = {}
    how = (f"toy DreamStyle model + token LoRA, synthetic scene {frames}x{video.shape[1]}x{video.shape[2]}, chunks of "
           f"{chunk} overlapping by {overlap}, {steps} Euler steps; flow by OpenCV DIS on the input")
    for match, out in outs.items():
        err = _warp_errors(video, out)
        seam = np.mean([e for t, e in enumerate(err) if t in seam_pairs])
        inside = np.mean([e for t, e in enumerate(err) if t not in seam_pairs])
        tag = "colour_match_on" if match else "colour_match_off"
        results[f"dreamstyle_long_video_seam_vs_inside_warp_error_{tag}"] = metric(
            seam / inside, "<= 1.5", "ratio", f"{how}; seam {seam:.4f} vs inside {inside:.4f} mean |warp error|")
        first, last = chunks[0], chunks[-1]
        drift = (_lab_mean(out[last.start:last.stop]) - _lab_mean(out[first.start:first.stop])) - \
                (_lab_mean(video[last.start:last.stop]) - _lab_mean(video[first.start:first.stop]))
        results[f"dreamstyle_long_video_lab_drift_first_to_last_chunk_{tag}"] = metric(
            float(np.linalg.norm(drift)), "<= 5.0", "delta_e", f"{how}; mean Lab of the last chunk minus the first, "
            "output minus input")
    return results


def run():
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return {**layer_benchmark(), **fp8_lora_benchmark(), **seam_benchmark(), **step_benchmark("1.3B"),
            **step_benchmark("14B")}


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
