"""Train a toy HiCAST with the pack's own trainer cores and measure what it learned.

    python scripts/train_toy_hicast.py [--out assets/hicast_toy] [--quick] [--threads N]

Real architecture at toy size: ComfyUI's UNetModel (SD1.5 topology: ResBlocks, cross-attention
SpatialTransformer, skip decoder) with model_channels 32, channel_mult (1, 2), context width 32, working in
32x32 images with an exact stand-in for the VAE: latent = PixelUnshuffle_2(2 * RGB - 1) [12, 16, 16],
decode = (PixelShuffle_2(z) + 1) / 2 (edge maps go to the adapters at 8x the latent grid, as for SD). Data:
dreamstyle.synthetic_scenes frames, looks from dreamstyle.synthetic_styles. phi (the frozen loss network) is
ToyStylePhi, a stand-in for VGG-19 (no pretrained weights exist in the toy).
  0. base: eps-prediction DDPM training (hicast.noise_schedule) on raw frames and frames in each look, the
     context [empty token ; look token] with one fixed random "caption" token per look: like SD, the base has
     seen the styles through text, never an image -> stylized image mapping;
  1. stage 1 (image-model fine-tune): hicast.adapter_training.train_adapters with base_modules={"unet": unet}
     and no adapters: the UNet and the style encoder learn from content/style losses on (content, style)
     pairs drawn from the style set of every look (PairSampler), context [empty token] + style tokens;
  2. stage 2: the same trainer (the core of HiCASTTrainAdapter) with the UNet frozen: an edge adapter
     (soft-edge maps, hicast.edge_maps) and the style encoder, content/style/adversarial losses;
  3. stage 3: hicast.temporal_training.train_temporal_layers (the core of HiCASTTrainTemporalLayers) on 4-frame
     clips of raw training scenes with L_h;
  4. the img2img strength t0 and the style scale lambda (c' = [c ; lambda f_s]) are chosen on validation
     scenes (VALIDATION_SCENES, own references): the largest style-distance drop among the candidates whose
     structure stays >= MIN_STRUCTURE of the ground truth's;
  5. evaluation on held-out scenes and held-out style references: img2img (noise to t0, DDIM to 0) with the
     adapter + style tokens. Style distance 1 - dreamstyle.pair_scores.style_score(x, references) of the
     output vs of the input; edge structure = Pearson correlation of soft-edge maps with the raw input's, of
     the output relative to the ground truth's (the look applied exactly to the input); flicker of 8-frame
     videos stylized frame by frame with independent noise = mean |(out_{f+1} - out_f) - (gt_{f+1} - gt_f)|,
     with the L_h-trained temporal layers vs without temporal layers; and the pixel error to the ground truth
     relative to the input's, which texture that only matches the look's statistics cannot bring below 1.
Writes toy_hicast_unet.safetensors, toy_hicast_edge_adapter.safetensors, toy_hicast_style_encoder.safetensors,
toy_hicast_temporal_layers.safetensors, before_after.png and eval.json (numbers + sha256 of each file) into --out.
"""
import argparse
import hashlib
import itertools
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STYLES = ["palette", "thermal"]
SIZE, CTX = 32, 32
UNET = dict(model_channels=32, channel_mult=(1, 2), num_res_blocks=[1, 1], transformer_depth=[0, 1],
            transformer_depth_output=[1, 1, 0, 0], transformer_depth_middle=1, context_dim=CTX, num_heads=4)
TRAIN_SCENES, VALIDATION_SCENES, EVAL_SCENES, FRAMES = range(0, 48), range(1100, 1106), range(1000, 1012), 8
STEPS = dict(base=800, fine_tune=3000, adapters=150, temporal=200)
W_CONTENT, T_MAX = 300.0, 500        # L_c weight and the largest training timestep of stages 1 and 2
DDIM_STEPS = 10                      # img2img steps
STRENGTHS = (200, 300)               # img2img t0 candidates (noise to t0, DDIM to 0), chosen on the validation scenes
STYLE_SCALES = (1.0, 1.5, 2.0, 3.0)  # style scale lambda candidates, chosen with t0
MIN_STRUCTURE = 0.7                  # the choice keeps validation structure >= this (the goal 0.6 plus a margin)


def log(msg, t0=[time.time()]):
    print(f"[hicast toy {time.time() - t0[0]:6.1f}s] {msg}", flush=True)


def scene_frames(seeds, frames=FRAMES):
    """uint8 [S, F, H, W, 3] raw clips and {style: the same clips in that look}."""
    from dreamstyle.synthetic_scenes import make_scene
    from dreamstyle.synthetic_styles import STYLES as LOOKS
    raw = np.stack([make_scene(s, frames=frames, height=SIZE, width=SIZE).render() for s in seeds])
    return raw, {n: np.stack([LOOKS[n].apply(c) for c in raw]) for n in STYLES}


def to_images(u8):
    """uint8 [..., H, W, 3] -> float [N, 3, H, W] 0..1."""
    x = torch.from_numpy(np.ascontiguousarray(u8)).float() / 255
    return x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2).contiguous()


def encode(images):
    return torch.nn.functional.pixel_unshuffle(images * 2 - 1, 2)


def decode(z):
    return (torch.nn.functional.pixel_shuffle(z, 2) + 1) / 2


def edge_maps(images):
    """[N, 3, H, W] -> soft-edge maps [N, 8H, 8W, 3] (the adapters' 8x-latent map size)."""
    from hicast.edge_maps import soft_edge
    m = soft_edge(images.permute(0, 2, 3, 1))
    return torch.nn.functional.interpolate(m.permute(0, 3, 1, 2), scale_factor=4, mode="nearest").permute(0, 2, 3, 1)


class ToyStylePhi(torch.nn.Module):
    """The toy's frozen loss network, a stand-in for VGG-19's relu levels (no pretrained weights in the toy).

    Level 0 (style): each pixel's soft assignment to a BINS^3 RGB grid, softmax(-||x - c_k||^2 / 2 sigma^2),
    so its spatial mean is a colour histogram (as VGG's relu1_1 statistics carry colour); level 1 (content and
    style, L_c's level like relu4_1): rectified luminance Sobel responses (+-d/dx, +-d/dy), blind to how a look
    recolours a region but not to where its edges are. A fixed random conv net ranks the looks' frames farther
    from their own references than raw frames (docs/hicast.md), so it cannot teach them."""
    content_levels = [1]

    def __init__(self, bins=6, sigma=0.07, colour_scale=4.0, gradient_scale=2.0):
        super().__init__()
        c = (torch.arange(bins) + 0.5) / bins
        self.register_buffer("centres", torch.cartesian_prod(c, c, c))  # [bins^3, 3]
        k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4
        self.register_buffer("sobel", torch.stack([k, k.t()])[:, None])
        self.register_buffer("luma", torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1))
        self.sigma, self.colour_scale, self.gradient_scale = sigma, colour_scale, gradient_scale

    def forward(self, images):
        """images [B, 3, H, W] 0..1 -> [colour assignment [B, bins^3, H, W], gradients [B, 4, H, W]]."""
        d2 = ((images[:, None] - self.centres[None, :, :, None, None]) ** 2).sum(2)
        colour = torch.softmax(-d2 / (2 * self.sigma ** 2), dim=1) * self.colour_scale
        lum = (images * self.luma).sum(1, keepdim=True)
        g = torch.nn.functional.conv2d(torch.nn.functional.pad(lum, (1, 1, 1, 1), mode="replicate"), self.sobel)
        return [colour, torch.cat([g.relu(), (-g).relu()], 1) * self.gradient_scale]


def new_unet(seed=0):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    torch.manual_seed(seed)
    unet = UNetModel(image_size=SIZE // 2, in_channels=12, out_channels=12, model_channels=UNET["model_channels"],
                     num_res_blocks=UNET["num_res_blocks"], channel_mult=UNET["channel_mult"], num_heads=UNET["num_heads"],
                     transformer_depth=UNET["transformer_depth"], transformer_depth_output=UNET["transformer_depth_output"],
                     transformer_depth_middle=UNET["transformer_depth_middle"], context_dim=CTX,
                     use_linear_in_transformer=True, use_spatial_transformer=True,
                     operations=comfy.ops.disable_weight_init)
    for m in unet.modules():  # ComfyUI's ops skip initialisation (weights come from files): PyTorch's default init
        for cls in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(m, cls):
                cls.reset_parameters(m)
    return unet


class Base:
    """base(x_t, t, context, transformer_options) -> eps with ComfyUI's UNetModel calling convention."""

    def __init__(self, unet):
        self.unet = unet

    def __call__(self, x_t, t, context, transformer_options):
        return self.unet(x_t, t.float(), context, transformer_options=dict(transformer_options))


def look_tokens(seed=7):
    """One fixed random "caption" token per look (index 0 = the empty prompt, 1 = raw, 2.. = STYLES)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2 + len(STYLES), CTX, generator=g)


def train_base(unet, images, look, tokens, steps, batch=16, lr=2e-3, seed=0):
    """DDPM eps-prediction on IMAGES [N, 3, H, W] whose look index is LOOK [N] (context [empty ; look])."""
    from hicast.noise_schedule import add_noise, alphas_cumprod
    abar = alphas_cumprod()
    base = Base(unet)
    unet.train().requires_grad_(True)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 30) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(images), (batch,), generator=g)
        z0 = encode(images[idx])
        t = torch.randint(0, 1000, (batch,), generator=g)
        noise = torch.randn(z0.shape, generator=g)
        ctx = torch.stack([tokens[0].expand(batch, -1), tokens[look[idx]]], 1)
        loss = torch.nn.functional.mse_loss(base(add_noise(z0, noise, t, abar), t, ctx, {}), noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"base step {step}: loss {loss.item():.4f}")
    unet.eval().requires_grad_(False)


@torch.no_grad()
def img2img(base, content, context, patches, seed, t0, steps=DDIM_STEPS):
    """Noise CONTENT [N, 3, H, W] to t0 (noise seeded per frame) and run deterministic DDIM to 0."""
    from hicast.noise_schedule import add_noise, alphas_cumprod, predict_x0
    abar = alphas_cumprod()
    z0 = encode(content)
    noise = torch.stack([torch.randn(z0.shape[1:], generator=torch.Generator().manual_seed(seed + i))
                         for i in range(len(z0))])
    ts = np.linspace(t0, 0, steps + 1).round().astype(int)
    x = add_noise(z0, noise, torch.full((len(z0),), ts[0]), abar)
    for t, t_next in zip(ts[:-1], ts[1:]):
        tt = torch.full((len(z0),), int(t))
        eps = base(x, tt, context, {"patches": {"input_block_patch": list(patches)}, "cond_or_uncond": [0]})
        x0 = predict_x0(x, eps, tt, abar).clamp(-1, 1)
        a = abar[int(t_next)] if t_next > 0 else torch.tensor(1.0)
        x = a.sqrt() * x0 + (1 - a).sqrt() * eps if t_next > 0 else x0
    return decode(x).clamp(0, 1)


def to_u8(images):
    return (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)


def style_distance(images, refs):
    from dreamstyle.pair_scores import style_score
    return 1.0 - style_score(to_u8(images), refs)


def edge_structure(raw, images):
    """Mean Pearson correlation of the soft-edge maps of RAW and IMAGES, frame by frame."""
    from hicast.edge_maps import soft_edge
    a, b = soft_edge(raw.permute(0, 2, 3, 1))[..., 0], soft_edge(images.permute(0, 2, 3, 1))[..., 0]
    a, b = a.flatten(1) - a.flatten(1).mean(1, keepdim=True), b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return float(((a * b).sum(1) / ((a * a).sum(1) * (b * b).sum(1)).sqrt().clamp_min(1e-8)).mean())


def flicker(video, gt):
    """mean |(v_{f+1} - v_f) - (gt_{f+1} - gt_f)| over a clip [F, 3, H, W]: frame changes the true stylized
    video does not have."""
    return float(((video[1:] - video[:-1]) - (gt[1:] - gt[:-1])).abs().mean())


@torch.no_grad()
def stylize(base, levels, adapter, encoder, tokens, content, refs, seed, knobs, patches=()):
    """HiCAST img2img of CONTENT [N, 3, H, W] with the edge adapter and the style tokens of the references
    REFS (uint8 [K, H, W, 3]): c' = [empty token ; lambda * f_s], noise to t0; KNOBS = (t0, lambda)."""
    t0, scale = knobs
    from hicast.feature_injection import AdapterInjection
    from hicast.style_encoder import append_style_tokens
    f_s = encoder(to_images(refs)).mean(0, keepdim=True)
    ctx = append_style_tokens(tokens[:1][None], f_s, scale).expand(len(content), -1, -1)
    inject = AdapterInjection(levels, [("edge", adapter, edge_maps(content), 1.0)])
    return img2img(base, content, ctx, [inject, *patches], seed=seed, t0=t0)


def image_scores(x, out, gt, refs):
    """Mean per-image style distances to REFS of the input X, the output OUT and the ground truth GT, the edge
    structure of OUT and of GT, and the pixel error to the ground truth of OUT relative to X's (all [N, 3, H, W]):
    the two proxies can be met by a texture whose colour statistics match the look, this one cannot (a true
    stylization lands nearer the exact look than the input, < 1)."""
    d = [float(np.mean([style_distance(im[i:i + 1], refs) for i in range(len(im))])) for im in (x, out, gt)]
    s_out, s_gt = edge_structure(x, out), edge_structure(x, gt)
    return {"style_distance_input": d[0], "style_distance_output": d[1], "style_distance_ground_truth": d[2],
            "style_distance_drop": 1 - d[1] / d[0], "edge_structure_output": s_out, "edge_structure_ground_truth": s_gt,
            "structure_vs_gt": s_out / s_gt,
            "ground_truth_error_vs_input": float((out - gt).abs().mean() / (x - gt).abs().mean())}


@torch.no_grad()
def choose_knobs(base, levels, adapter, encoder, tokens, seeds=VALIDATION_SCENES):
    """The (t0, lambda) of STRENGTHS x STYLE_SCALES with the largest mean style-distance drop on the validation
    scenes (with their own references) among those keeping structure >= MIN_STRUCTURE of the ground truth's
    (else the gentlest), and every candidate's numbers."""
    raw, looks = scene_frames(seeds, frames=1)
    _, ref_looks = scene_frames(range(2100, 2104), frames=1)
    x, rows = to_images(raw[:, 0]), {}
    for knobs in itertools.product(STRENGTHS, STYLE_SCALES):
        per = [image_scores(x, stylize(base, levels, adapter, encoder, tokens, x, ref_looks[n][:, 0], 50, knobs),
                            to_images(looks[n][:, 0]), ref_looks[n][:, 0]) for n in STYLES]
        rows[knobs] = {k: float(np.mean([p[k] for p in per])) for k in ("style_distance_drop", "structure_vs_gt")}
        log(f"validation, t0 {knobs[0]}, style scale {knobs[1]}: {rows[knobs]}")
    kept = [k for k, r in rows.items() if r["structure_vs_gt"] >= MIN_STRUCTURE] or [(STRENGTHS[0], STYLE_SCALES[0])]
    return max(kept, key=lambda k: rows[k]["style_distance_drop"]), rows


@torch.no_grad()
def evaluate(base, levels, adapter, encoder, layers, tokens, knobs, eval_seeds=EVAL_SCENES):
    """Per-style numbers on held-out scenes and held-out style references, and before/after strips."""
    from hicast.temporal_layers import TemporalInjection
    eraw, elooks = scene_frames(eval_seeds)
    _, ref_looks = scene_frames(range(2000, 2004))
    per_style, strips = {}, []
    for name in STYLES:
        refs = np.concatenate(list(ref_looks[name][:, ::4]))
        x, gt = to_images(eraw[:, 0]), to_images(elooks[name][:, 0])
        out = stylize(base, levels, adapter, encoder, tokens, x, refs, 100, knobs)
        fl = {}
        for key, patches in (("without", []), ("with_lh", [TemporalInjection(levels, layers)])):
            vals = []
            for c in range(min(3, len(eraw))):
                v, vg = to_images(eraw[c]), to_images(elooks[name][c])
                vo = stylize(base, levels, adapter, encoder, tokens, v, refs, 300 + 17 * c, knobs, patches)
                vals.append(flicker(vo, vg))
            fl[key] = float(np.mean(vals))
        per_style[name] = {**image_scores(x, out, gt, refs), "flicker_without_temporal": fl["without"],
                           "flicker_with_lh_layers": fl["with_lh"], "flicker_ratio": fl["with_lh"] / fl["without"]}
        log(f"{name}: {per_style[name]}")
        strips.append(torch.cat([torch.cat(list(t[:4]), 2) for t in (x, out, gt)], 1))

    return per_style, strips


FILES = {"unet": "toy_hicast_unet.safetensors", "edge_adapter": "toy_hicast_edge_adapter.safetensors",
         "style_encoder": "toy_hicast_style_encoder.safetensors", "temporal_layers": "toy_hicast_temporal_layers.safetensors"}


def load_toy(folder):
    """The trained toy from FOLDER (files checked against the sha256 pins of its eval.json):
    (base, levels, adapter, encoder, layers, look tokens, eval.json). Call after import_comfy_in_process()."""
    from safetensors import safe_open
    from safetensors.torch import load_file
    from hicast.module_files import load_module
    from hicast.unet_levels import encoder_levels
    with open(os.path.join(folder, "eval.json")) as f:
        result = json.load(f)
    for key, name in FILES.items():
        if sha256(os.path.join(folder, name)) != result["sha256"][key]:
            raise ValueError(f"{name}: sha256 differs from the pin in {folder}/eval.json")
    path = os.path.join(folder, FILES["unet"])
    with safe_open(path, "pt") as f:
        tokens = torch.tensor(json.loads(f.metadata()["look_tokens"]))
    unet = new_unet()
    unet.load_state_dict({k: v.float() for k, v in load_file(path).items()})
    unet.eval().requires_grad_(False)
    adapter, encoder, layers = (load_module(os.path.join(folder, FILES[k]))[0].eval()
                                for k in ("edge_adapter", "style_encoder", "temporal_layers"))
    levels = encoder_levels(UNET["model_channels"], UNET["channel_mult"], UNET["num_res_blocks"])
    return Base(unet), levels, adapter, encoder, layers, tokens, result


def trained_knobs(result):
    """(t0, style scale) the script chose for the toy whose eval.json is RESULT."""
    return result["setup"]["t0"], result["setup"]["style_scale"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "assets", "hicast_toy"))
    ap.add_argument("--quick", action="store_true", help="a few steps of everything (smoke run, meaningless numbers)")
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)),
                    help="torch threads (1 is several times faster on a machine other jobs keep busy)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    from hicast.adapter_training import PairSampler, train_adapters
    from hicast.module_files import save_module
    from hicast.style_adapter import StyleAdapter
    from hicast.style_encoder import StyleEncoder
    from hicast.temporal_layers import TemporalLayers
    from hicast.temporal_training import train_temporal_layers
    from hicast.unet_levels import encoder_levels
    from safetensors.torch import save_file

    q = args.quick
    steps = {k: 5 for k in STEPS} if q else STEPS
    last = lambda h, k: float(np.mean([x[k] for x in h[-20:]]))  # noqa: E731  (a loss history's last 20 steps)
    os.makedirs(args.out, exist_ok=True)
    train_seeds, eval_seeds = (TRAIN_SCENES[:8], EVAL_SCENES[:3]) if q else (TRAIN_SCENES, EVAL_SCENES)
    raw, looks = scene_frames(train_seeds)
    tokens = look_tokens()
    images = torch.cat([to_images(raw)] + [to_images(looks[n]) for n in STYLES])
    look = torch.cat([torch.full((raw.shape[0] * FRAMES,), i + 1) for i in range(1 + len(STYLES))])
    log(f"data: {len(images)} frames {SIZE}x{SIZE}, looks raw + {STYLES}")

    unet = new_unet()
    log(f"unet: {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters")
    train_base(unet, images, look, tokens, steps["base"])
    base = Base(unet)
    levels = encoder_levels(UNET["model_channels"], UNET["channel_mult"], UNET["num_res_blocks"])
    widths = [lv.channels for lv in levels]

    # (content, style) pairs: content from half the training scenes, styles from every look of the other half
    half = raw.shape[0] // 2
    content = to_images(raw[:half, ::2])
    styles = torch.cat([to_images(looks[n][half:, ::4]) for n in STYLES])
    sampler = PairSampler(encode(content), content, {"edge": edge_maps(content)}, styles, batch_size=8)
    phi, ctx = ToyStylePhi(), tokens[:1][None]
    torch.manual_seed(1)
    encoder = StyleEncoder(context_dim=CTX, tokens=1, widths=(16, 32), hidden=64, size=SIZE)

    # stage 1: the UNet and the style encoder, no adapters, content + style losses
    hist_1 = train_adapters(base, levels, {}, encoder, sampler, decode, ctx, steps["fine_tune"], feature_net=phi,
                            lr=1e-3, weights=(W_CONTENT, 1.0, 0.0), t_max=T_MAX, seed=0, base_modules={"unet": unet},
                            max_grad_norm=1.0, progress=lambda d, n: d % 250 == 0 and log(f"fine-tune step {d}/{n}"))
    unet.eval().requires_grad_(False)
    log(f"fine-tune: loss {hist_1[0]['loss']:.3f} -> {last(hist_1, 'loss'):.3f}")

    # stage 2: edge adapter + style encoder on the frozen UNet, content + style + adversarial losses
    torch.manual_seed(1)
    adapter = StyleAdapter(widths, hidden=(32, 64))
    hist = train_adapters(base, levels, {"edge": adapter}, encoder, sampler, decode, ctx, steps["adapters"],
                          feature_net=phi, lr=1e-3, weights=(W_CONTENT, 1.0, 0.01), t_max=T_MAX, seed=0,
                          progress=lambda d, n: d % 50 == 0 and log(f"adapter step {d}/{n}"))
    log(f"adapters: loss {hist[0]['loss']:.3f} -> {last(hist, 'loss'):.3f}")

    # stage 3: temporal layers with L_h on raw training clips
    clips_u8 = torch.stack([to_images(c) for c in raw])  # [S, F, 3, H, W]
    layers = TemporalLayers(widths, heads=4)
    ctx_raw = torch.stack([tokens[0], tokens[1]])[None]
    hist_t = train_temporal_layers(base, levels, layers, lambda step, g: encode(clips_u8[int(torch.randint(len(clips_u8), (1,), generator=g))][:4]),
                                   ctx_raw, steps["temporal"], lr=1e-3, seed=0,
                                   progress=lambda d, n: d % 50 == 0 and log(f"temporal step {d}/{n}"))
    log(f"temporal: L_h {np.mean([h['loss_h'] for h in hist_t[:20]]):.3f} -> {last(hist_t, 'loss_h'):.3f}")
    adapter.eval(), encoder.eval(), layers.eval()
    unet.load_state_dict({k: v.half().float() for k, v in unet.state_dict().items()})  # evaluate what the fp16 file holds

    paths = FILES
    save_file({k: v.half().contiguous() for k, v in unet.state_dict().items()}, os.path.join(args.out, paths["unet"]),
              metadata={"unet_config": json.dumps(UNET), "look_tokens": json.dumps(tokens.tolist())})
    save_module(os.path.join(args.out, paths["edge_adapter"]), adapter, "style_adapter", map_type="edge")
    save_module(os.path.join(args.out, paths["style_encoder"]), encoder, "style_encoder", map_type="style")
    save_module(os.path.join(args.out, paths["temporal_layers"]), layers, "temporal_layers", map_type="video")
    knobs, validation = choose_knobs(base, levels, adapter, encoder, tokens)
    log(f"chosen on the validation scenes: t0 {knobs[0]}, style scale {knobs[1]}")
    per_style, strips = evaluate(base, levels, adapter, encoder, layers, tokens, knobs, eval_seeds)
    from PIL import Image
    strip = torch.cat(strips, 1).permute(1, 2, 0).numpy()
    Image.fromarray((strip * 255).round().astype(np.uint8)).resize((strip.shape[1] * 4, strip.shape[0] * 4),
                                                                     Image.NEAREST).save(os.path.join(args.out, "before_after.png"))
    mean = lambda k: float(np.mean([v[k] for v in per_style.values()]))  # noqa: E731
    result = {"setup": {"styles": STYLES, "size": SIZE, "unet": UNET, "steps": steps, "w_content": W_CONTENT,
                        "t_max": T_MAX, "train_scenes": len(train_seeds), "eval_scenes": len(eval_seeds), "t0": knobs[0],
                        "ddim_steps": DDIM_STEPS, "style_scale": knobs[1], "quick": q},
              "validation": [{"t0": k[0], "style_scale": k[1], **v} for k, v in validation.items()],
              "per_style": per_style,
              "style_distance_drop": mean("style_distance_drop"), "structure_vs_gt": mean("structure_vs_gt"),
              "lh_flicker_ratio": mean("flicker_with_lh_layers") / mean("flicker_without_temporal"),
              "ground_truth_error_vs_input": mean("ground_truth_error_vs_input"),
              "fine_tune_loss": [hist_1[0]["loss"], last(hist_1, "loss")],
              "adapter_loss": [hist[0]["loss"], last(hist, "loss")],
              "temporal_loss_h": [float(np.mean([h["loss_h"] for h in hist_t[:20]])), last(hist_t, "loss_h")],
              "sha256": {k: sha256(os.path.join(args.out, p)) for k, p in paths.items()}, "files": paths}
    with open(os.path.join(args.out, "eval.json"), "w") as f:
        json.dump(result, f, indent=1)
    log(f"style drop {result['style_distance_drop']:.3f}, structure vs gt {result['structure_vs_gt']:.3f}, "
        f"flicker ratio {result['lh_flicker_ratio']:.3f}, error to the exact look vs the input's "
        f"{result['ground_truth_error_vs_input']:.3f}; wrote {args.out}")


if __name__ == "__main__":
    main()
