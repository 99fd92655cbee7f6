"""Train the toy DreamStyle models with the pack's own code and measure what they learned.

    python scripts/train_toy_dreamstyle.py [--out assets/dreamstyle_toy] [--quick] [--vae FILE]
    python scripts/train_toy_dreamstyle.py --diagnose [--out assets/dreamstyle_toy]   # why structure is lost

Real architectures at toy size: ComfyUI's WanVAE (dim 16, z 16) and WanModel (I2V, dim 128, FFN 512,
3 blocks), the tiny UMT5 text encoder fixture and the test CLIP-vision stand-in (the encoders the demo
host uses). On the synthetic benchmark (styles palette, thermal; 64x64, 5 frames):
  1. VAE: trained as an autoencoder on raw and stylized clips (L1 + L2), then re-parametrised exactly so
     its latents have the per-channel statistics of ComfyUI's Wan21 latent format (fit_latent_format);
  2. base: the DiT trained in full as an "I2V-ish" copier (x^sty = x^raw) on every condition layout, on raw
     clips and on clips in the styles' looks (other scenes, captioned with the style phrase): like Wan, the
     base has seen such videos, never the raw -> stylized mapping;
  3. CT: token LoRA (rank 16) with dreamstyle.training on the train split, condition ratio 1:2:1;
  4. SFT: from the CT LoRA on a smaller curated set (fresh scenes);
  5. the same CT + SFT budget with a plain LoRA of the same rank;
  6. evaluation on the held-out scenes (never seen in training): Euler sampling (dreamstyle.flow_sampler)
     with the style image as the condition, decode, and dreamstyle.pair_scores: style distance
     1 - style_score(output, target style's references) against the raw input's, content_score(raw, output).
Writes toy_wan21_vae.safetensors, toy_wan21_i2v.safetensors, toy_dreamstyle_token_lora.safetensors,
toy_dreamstyle_plain_lora.safetensors and eval.json into --out.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STYLES = ["palette", "thermal"]
SCENES, HELDOUT = 16, 0.25  # the CT benchmark: scenes, the fraction held out for evaluation
SIZE, FRAMES = 64, 5
CROP = 32  # the VAE trains on random crops (it is convolutional), the DiT on whole frames
DIM, FFN, LAYERS, VAE_DIM = 128, 512, 3, 16


def log(msg, t0=[time.time()]):
    print(f"[toy {time.time() - t0[0]:6.1f}s] {msg}", flush=True)


def build_data(base, quick):
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    scenes = 8 if quick else SCENES
    ct = os.path.join(base, "ct")
    build_synthetic_benchmark(ct, scenes=scenes, styles=STYLES, frames=FRAMES, height=SIZE, width=SIZE, refs=2,
                              heldout=HELDOUT, seed=0)
    sft = os.path.join(base, "sft")
    build_synthetic_benchmark(sft, scenes=4, styles=STYLES, frames=FRAMES, height=SIZE, width=SIZE, refs=2,
                              heldout=0.0, seed=1)
    ident = identity_set(os.path.join(base, "identity"), scenes, STYLES[:1], seed=2, looks=False)
    looks = identity_set(os.path.join(base, "looks"), scenes, STYLES, seed=3, looks=True)
    return ct, sft, ident, looks


def identity_set(folder, scenes, styles, seed, looks):
    """Pairs whose stylized video is the raw video (x^sty = x^raw) for the base copier: the benchmark's raw
    clips with their content captions or, with LOOKS, its clips in a style with the style captions."""
    from dreamstyle.dataset_writer import DatasetWriter, PairData
    from dreamstyle.synthetic_benchmark import synthetic_pairs
    writer = DatasetWriter(folder)
    for p in synthetic_pairs(scenes=scenes, styles=styles, frames=FRAMES, height=SIZE, width=SIZE, refs=2,
                             heldout=0.0, seed=seed):
        if p.id not in writer:
            video, refs, caption = (p.stylized, p.refs, p.caption_sty) if looks else \
                (p.raw, [p.raw[0], p.raw[-1]], p.caption_ns)
            writer.append(PairData(p.id, video, video, refs, caption_ns=caption, caption_sty=caption, fps=16.0,
                                   split="train"))
    return folder


def clips(folder):
    from dreamstyle.dataset_reader import iter_pairs
    out = []
    for pair in iter_pairs(folder, "train"):
        out += [pair.load_raw(), pair.load_stylized()]
    return torch.from_numpy(np.stack(out)).float() / 255  # [N, T, H, W, 3]


def new_vae():
    import comfy.ldm.wan.vae as wan_vae
    return wan_vae.WanVAE(dim=VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                          temperal_downsample=[False, True, True], dropout=0.0)


def train_vae(data, steps, seed=1, batch=8, lr=1e-3, warmup=50):
    """WanVAE as an autoencoder on random crops: L1 + L2 reconstruction, AdamW with warm-up and cosine decay
    to lr/10, gradients clipped at 1; then fit_latent_format."""
    from scripts.fixtures.init import init_small
    torch.manual_seed(seed)
    vae = new_vae()
    init_small(vae, seed)
    for name, p in vae.named_parameters():  # the sampling convs and heads need a fan-in scaled start to train
        if p.ndim >= 2 and ("conv" in name or "head" in name or "resample" in name):
            torch.nn.init.kaiming_normal_(p, nonlinearity="linear")
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + np.cos(np.pi * s / steps))))
    g = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(data), (batch,), generator=g)
        top, left = (int(v) for v in torch.randint(data.shape[2] - CROP + 1, (2,), generator=g))
        x = data[idx, :, top:top + CROP, left:left + CROP].movedim(-1, 1) * 2 - 1  # [B, 3, T, h, w] in [-1, 1]
        err = vae.decode(vae.encode(x)) - x
        loss = err.abs().mean() + (err ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step}: loss {float(loss.detach()):.4f}")
    return fit_latent_format(vae, data)


@torch.no_grad()
def fit_latent_format(vae, data):
    """Re-parametrise the trained VAE so that its latents follow ComfyUI's Wan21 latent format: with m, s the
    per-channel mean and std of the encoder's latents z over DATA, the encoder's last 1x1 conv now gives
    z' = (z - m) / s * std_wan + mean_wan and the decoder's first 1x1 conv takes z' and computes what it
    computed from z. Exact (both are affine), so reconstructions are unchanged, and Wan21().process_in(z')
    = (z - m) / s has zero mean and unit variance per channel, as the DiT expects of real Wan latents."""
    import comfy.latent_formats
    fmt = comfy.latent_formats.Wan21()
    z = torch.cat([vae.encode(data[i:i + 8].movedim(-1, 1) * 2 - 1) for i in range(0, len(data), 8)])
    m, s = z.mean((0, 2, 3, 4)), z.std((0, 2, 3, 4)) + 1e-6
    wan_mean, wan_std = fmt.latents_mean.flatten(), fmt.latents_std.flatten()
    a = wan_std / s
    b = wan_mean - m * a
    n = a.numel()
    vae.conv1.weight[:n] *= a.view(-1, 1, 1, 1, 1)
    vae.conv1.bias[:n] = vae.conv1.bias[:n] * a + b
    vae.conv2.bias += (vae.conv2.weight.flatten(1) @ (-b / a))
    vae.conv2.weight /= a.view(1, -1, 1, 1, 1)
    return vae


def comfy_parts(vae_sd, seed=0):
    """ComfyUI VAE wrapper of the trained weights, the tiny UMT5 CLIP and the CLIP-vision stand-in."""
    import importlib.util
    import comfy.sd
    import comfy.utils
    from scripts.make_fixtures import ensure_fixtures
    models = ensure_fixtures()
    vae = comfy.sd.VAE(sd=vae_sd)
    spec = importlib.util.spec_from_file_location("unistyle_toy_test_nodes",
                                                  os.path.join(ROOT, "tests", "host_nodes", "__init__.py"))
    nodes_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nodes_mod)
    sd, meta = comfy.utils.load_torch_file(os.path.join(models, "text_encoders", "tiny_umt5.safetensors"),
                                           safe_load=True, return_metadata=True)
    spiece = sd.pop("spiece_model")
    clip = comfy.sd.CLIP(nodes_mod._tiny_umt5_target(json.loads(meta["tiny_umt5_config"])),
                         parameters=comfy.utils.calculate_parameters(sd), tokenizer_data={"spiece_model": spiece},
                         model_options={"dtype": torch.float32})
    clip.load_sd(sd)
    return vae, clip, nodes_mod.tiny_clip_vision_features


def encoders(vae, clip, clip_features):
    import comfy.latent_formats
    from dreamstyle.training_data import Encoders
    fmt = comfy.latent_formats.Wan21()
    return Encoders(vae_encode=lambda v: vae.encode(v).float(),
                    text_encode=lambda c: clip.encode_from_tokens(clip.tokenize(c)).float(),
                    clip_vision_encode=lambda im: clip_features(im, 0),
                    fingerprint="toy", latent_in=lambda z: fmt.process_in(z.float()))


def new_dit(seed=0):
    import comfy.ldm.wan.model as wan_model
    from scripts.fixtures.init import init_small
    model = wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=DIM, ffn_dim=FFN, num_heads=DIM // 128,
                               num_layers=LAYERS, text_dim=4096, freq_dim=256, operations=torch.nn)
    init_small(model, seed)
    return model


def train_base(model, enc, datasets, run_dir, steps):
    """Full training of the DiT as a copier (x^sty = x^raw) through the trainer's own micro-batches, the
    DATASETS taking turns step by step."""
    from dreamstyle.flow_matching import flow_matching_loss
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    trainers = [DreamStyleTrainer(model, enc, d, TrainConfig(steps=steps, rank=1, batch=4, seed=5),
                                  os.path.join(run_dir, str(i)), resume=False) for i, d in enumerate(datasets)]
    for trainer in trainers:
        trainer.data.encode_all()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    for step in range(steps):
        trainer = trainers[step % len(trainers)]
        _, layout, x, target, t, ctx, clip = trainer.micro_batch(step // len(trainers), 0)
        loss = flow_matching_loss(model(x, t, ctx, clip_fea=clip), target, layout)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"base step {step}: loss {float(loss):.4f}")
    return model


def progress_log(label, every):
    """A trainer progress callback that logs every EVERY steps and the last."""
    return lambda step, steps, loss: (step % every == 0 or step == steps) and log(
        f"{label} step {step}/{steps}: loss {loss:.4f}")


def train_lora(model, enc, ct, sft, run_dir, steps_ct, steps_sft, rank, token_specific, cache, perturbation, shift):
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    kind = "token" if token_specific else "plain"
    common = dict(rank=rank, batch=4, seed=0, token_specific=token_specific, ratio="1:2:1",
                  input_perturbation=perturbation, shift=shift)
    ct_out = os.path.join(run_dir, f"ct_{kind}.safetensors")
    t = DreamStyleTrainer(model, enc, ct, TrainConfig(stage="CT", steps=steps_ct, lr=2e-3, **common),
                          os.path.join(run_dir, f"ct_{kind}"), cache_dir=cache, resume=False,
                          progress=progress_log(f"CT {kind}", 100))
    t.run(ct_out)
    sft_out = os.path.join(run_dir, f"sft_{kind}.safetensors")
    t = DreamStyleTrainer(model, enc, sft, TrainConfig(stage="SFT", steps=steps_sft, lr=1e-3, **common),
                          os.path.join(run_dir, f"sft_{kind}"), init_lora=ct_out, cache_dir=cache, resume=False,
                          progress=progress_log(f"SFT {kind}", 50))
    result = t.run(sft_out)
    return result.loras, sft_out


def sampled(model, enc, vae, dataset, loras, token_specific, cache, condition="style_image", steps=12,
            split="heldout", seed=0):
    """Yield (pair, uint8 frames [F, H, W, 3]) for every pair of SPLIT, sampled with LORAS (None: the base)
    under CONDITION (style_image | first_frame | text), the noise of pair i seeded SEED + i."""
    from dreamstyle.condition_latents import condition_latents, plan_layout
    from dreamstyle.dataset_reader import iter_pairs
    from dreamstyle.feature_cache import FeatureCache
    from dreamstyle.flow_sampler import sample
    from dreamstyle.layout import VIDEO
    from dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame
    from dreamstyle.training_data import EncodedPairs
    pairs = list(iter_pairs(dataset, split))
    data = EncodedPairs(pairs, enc, FeatureCache(cache, enc.fingerprint))
    hooks = None
    if loras is not None:
        hooks = TokenLoRAHooks(loras)
        hooks.attach(model)
    try:
        for i, pair in enumerate(pairs):
            layout = plan_layout(FRAMES, SIZE, SIZE, first_frame=condition == "first_frame",
                                 style_image=condition == "style_image")
            z_raw = enc.latent_in(data.video(i, "raw")[None])
            z_first = enc.latent_in(data.first_frame(i)[None]) if condition == "first_frame" else None
            z_style = enc.latent_in(data.style_image(i, 0)[None]) if condition == "style_image" else None
            clip = data.clip_features(i, 0)[None] if condition == "style_image" else None
            caption = pair.caption_sty if condition == "text" else pair.caption_ns
            lat = condition_latents(layout, z_raw, z_first, z_style)
            types = layout.frame_types() if token_specific else torch.full((layout.total,), VIDEO)
            out = sample(model, lat, data.text(caption)[None], clip, steps=steps,
                         generator=torch.Generator().manual_seed(seed + i), hooks=hooks, frame_types=types,
                         tokens_per_frame=tokens_per_frame(SIZE // 8, SIZE // 8))
            z = enc_out(out[:, :, layout.video_slice])
            yield pair, (vae.decode(z)[0][:FRAMES].clamp(0, 1) * 255).round().byte().numpy()
    finally:
        if hooks is not None:
            hooks.detach()


def evaluate(model, enc, vae, dataset, loras, token_specific, cache, condition="style_image", steps=12,
             split="heldout"):
    """Held-out pairs: style distance of the output vs the raw input (to the target style's references),
    content score vs the raw input."""
    from dreamstyle.pair_scores import content_score, style_score
    rows = []
    for pair, frames in sampled(model, enc, vae, dataset, loras, token_specific, cache, condition, steps, split):
        raw, sty, refs = pair.load_raw(), pair.load_stylized(), np.stack(pair.refs())
        rows.append({"id": pair.id, "style_raw": style_score(raw, refs), "style_out": style_score(frames, refs),
                     "style_target": style_score(sty, refs), "content_out": content_score(raw, frames),
                     "content_target": content_score(raw, sty)})
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "id"}
    d_raw, d_out = 1 - mean["style_raw"], 1 - mean["style_out"]
    mean.update(style_distance_raw=d_raw, style_distance_out=d_out, style_distance_reduction=1 - d_out / d_raw,
                pairs=len(rows), condition=condition)
    return mean


def vae_roundtrip(vae, dataset):
    """The ceiling the VAE sets: scores of decode(encode(x)) for the held-out raw and stylized videos."""
    from dreamstyle.dataset_reader import iter_pairs
    from dreamstyle.pair_scores import content_score, style_score
    rows = []
    for pair in iter_pairs(dataset, "heldout"):
        raw, sty, refs = pair.load_raw(), pair.load_stylized(), np.stack(pair.refs())
        rt = lambda v: (vae.decode(vae.encode(torch.from_numpy(v).float() / 255))[0][:FRAMES].clamp(0, 1) * 255  # noqa: E731
                        ).round().byte().numpy()
        rows.append({"content_raw_roundtrip": content_score(raw, rt(raw)),
                     "style_stylized_roundtrip": style_score(rt(sty), refs)})
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


@torch.no_grad()
def one_step_predictions(model, enc, vae, dataset, loras, cache, sigmas=(0.2, 0.5, 0.8, 1.0)):
    """Teacher-forced x0 predictions on the held-out pairs (style-image condition): for each σ, the model sees the
    ground-truth stylized latent noised to σ, x0 = x_σ - σ·v is decoded and scored. Compared with the sampled
    output, this separates what the model predicts from what the multi-step sampler makes of it."""
    from dreamstyle.condition_latents import condition_latents, model_input, plan_layout
    from dreamstyle.dataset_reader import iter_pairs
    from dreamstyle.feature_cache import FeatureCache
    from dreamstyle.flow_matching import add_noise, timestep
    from dreamstyle.pair_scores import content_score, style_score
    from dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame
    from dreamstyle.training_data import EncodedPairs
    pairs = list(iter_pairs(dataset, "heldout"))
    data = EncodedPairs(pairs, enc, FeatureCache(cache, enc.fingerprint))
    hooks = TokenLoRAHooks(loras)
    hooks.attach(model)
    rows = {s: [] for s in sigmas}
    try:
        for i, pair in enumerate(pairs):
            layout = plan_layout(FRAMES, SIZE, SIZE, style_image=True)
            lat = condition_latents(layout, enc.latent_in(data.video(i, "raw")[None]), None,
                                    enc.latent_in(data.style_image(i, 0)[None]))
            ref = lat.reference.clone()
            ref[:, :, layout.video_slice] = enc.latent_in(data.video(i, "stylized")[None])
            raw, refs = pair.load_raw(), np.stack(pair.refs())
            g = torch.Generator().manual_seed(i)
            for sigma in sigmas:
                sig = torch.tensor([float(sigma)])
                x = add_noise(ref, torch.randn(ref.shape, generator=g), sig)
                with hooks.routing(layout.frame_types(), tokens_per_frame(SIZE // 8, SIZE // 8)):
                    v = model(model_input(x, lat), timestep(sig), data.text(pair.caption_ns)[None],
                              clip_fea=data.clip_features(i, 0)[None])
                frames = (vae.decode(enc_out((x - sigma * v)[:, :, layout.video_slice]))[0][:FRAMES].clamp(0, 1)
                          * 255).round().byte().numpy()
                rows[sigma].append((content_score(raw, frames), style_score(frames, refs)))
    finally:
        hooks.detach()
    return {f"sigma_{s}": {"content": float(np.mean([r[0] for r in v])), "style": float(np.mean([r[1] for r in v]))}
            for s, v in rows.items()}


@torch.no_grad()
def seed_agreement(model, enc, vae, dataset, loras, cache, steps, seeds=(0, 100)):
    """Held-out pairs sampled twice with the token LoRA (style-image condition), from two noise seeds: structure of
    each output vs the raw clip, and of the two outputs vs each other. Two samples that agree with each other far
    better than with the raw clip lose structure by a systematic bias; two that agree no better lose it to what
    the sampler draws where the model is unsure of the layout (variance)."""
    from dreamstyle.pair_scores import content_score
    a, b = (list(sampled(model, enc, vae, dataset, loras, True, cache, steps=steps, seed=s)) for s in seeds)
    rows = [(np.mean([content_score(pair.load_raw(), o) for o in (out_a, out_b)]), content_score(out_a, out_b))
            for (pair, out_a), (_, out_b) in zip(a, b)]
    return {"content_vs_raw": float(np.mean([r[0] for r in rows])),
            "content_seed_vs_seed": float(np.mean([r[1] for r in rows]))}


def diagnose(out, work):
    """Where the toy loses structure, from the committed weights: the VAE's ceiling (round trips of raw and
    stylized clips), the token LoRA's sampled output at several sampler step counts, from two seeds, and on train
    vs held-out pairs, and its teacher-forced one-step predictions."""
    import comfy.utils
    from dreamstyle.dataset_reader import iter_pairs
    from dreamstyle.pair_scores import content_score
    from dreamstyle.training import loras_from_file
    ct, _, _, _ = build_data(os.path.join(work, "data"), False)
    vae_sd = comfy.utils.load_torch_file(os.path.join(out, "toy_wan21_vae.safetensors"), safe_load=True)
    vae, clip, clip_features = comfy_parts(vae_sd)
    enc = encoders(vae, clip, clip_features)
    model = new_dit()
    model.load_state_dict(comfy.utils.load_torch_file(os.path.join(out, "toy_wan21_i2v.safetensors"), safe_load=True))
    model.requires_grad_(False)
    token = loras_from_file(os.path.join(out, "toy_dreamstyle_token_lora.safetensors"), model)
    cache = os.path.join(work, "cache")
    rt = lambda v: (vae.decode(vae.encode(torch.from_numpy(v).float() / 255))[0][:FRAMES].clamp(0, 1)  # noqa: E731
                    * 255).round().byte().numpy()
    pairs = list(iter_pairs(ct, "heldout"))
    result = {"vae_ceiling": {
        "content_raw_vs_stylized": float(np.mean([content_score(p.load_raw(), p.load_stylized()) for p in pairs])),
        "content_raw_vs_roundtrip_stylized": float(np.mean([content_score(p.load_raw(), rt(p.load_stylized()))
                                                            for p in pairs])),
        "content_raw_vs_roundtrip_raw": float(np.mean([content_score(p.load_raw(), rt(p.load_raw())) for p in pairs]))}}
    log(f"vae ceiling: {result['vae_ceiling']}")
    result["one_step_prediction"] = one_step_predictions(model, enc, vae, ct, token, cache)
    log(f"one-step predictions: {result['one_step_prediction']}")
    for steps in (1, 4, 12, 30):
        r = evaluate(model, enc, vae, ct, token, True, cache, steps=steps)
        result[f"sampled_{steps}_steps"] = {"content": r["content_out"], "style_drop": r["style_distance_reduction"]}
        log(f"{steps} sampler steps: {result[f'sampled_{steps}_steps']}")
    for steps in (1, 12):
        result[f"seed_agreement_{steps}_steps"] = seed_agreement(model, enc, vae, ct, token, cache, steps)
        log(f"seed agreement, {steps} steps: {result[f'seed_agreement_{steps}_steps']}")
    r = evaluate(model, enc, vae, ct, token, True, cache, split="train")
    result["sampled_12_steps_train_pairs"] = {"content": r["content_out"], "style_drop": r["style_distance_reduction"]}
    with open(os.path.join(out, "structure_diagnosis.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def enc_out(z):
    import comfy.latent_formats
    return comfy.latent_formats.Wan21().process_out(z)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "assets", "dreamstyle_toy"))
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "dreamstyle_toy"))
    ap.add_argument("--quick", action="store_true", help="fewer scenes and steps (a smoke run)")
    ap.add_argument("--rank", type=int, default=16, help="LoRA rank (token and plain)")
    ap.add_argument("--steps-ct", type=int, default=600)
    ap.add_argument("--steps-sft", type=int, default=200)
    ap.add_argument("--input-perturbation", type=float, default=0.0,
                    help="γ of the trainer's x_0-correcting input perturbation (token and plain LoRA)")
    ap.add_argument("--shift", type=float, default=5.0, help="timestep shift of the LoRA training (token and plain)")
    ap.add_argument("--vae", help="use these toy WanVAE weights (a toy_wan21_vae.safetensors) instead of training one")
    ap.add_argument("--diagnose", action="store_true",
                    help="no training: measure where the weights in --out lose structure (structure_diagnosis.json)")
    a = ap.parse_args(argv)
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    if a.diagnose:
        torch.set_num_threads(1)
        diagnose(a.out, a.work)
        return 0
    from dreamstyle.lora_file import write_safetensors_atomic
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    q = a.quick
    os.makedirs(a.out, exist_ok=True)
    ct, sft, ident, looks = build_data(os.path.join(a.work, "data"), q)
    log("data ready")
    if a.vae:
        import comfy.utils
        vae_sd = comfy.utils.load_torch_file(a.vae, safe_load=True)
        new_vae().load_state_dict(vae_sd)  # refuses weights of another shape
    else:
        vae_module = train_vae(torch.cat([clips(ct), clips(ident)]), 60 if q else 1600)
        vae_sd = {k: v.detach().contiguous() for k, v in vae_module.state_dict().items()}
    write_safetensors_atomic(os.path.join(a.out, "toy_wan21_vae.safetensors"), vae_sd, {"note": "toy WanVAE"})
    vae, clip, clip_features = comfy_parts(vae_sd)
    enc = encoders(vae, clip, clip_features)
    cache = os.path.join(a.work, "cache")
    import shutil
    shutil.rmtree(cache, ignore_errors=True)  # latents depend on the VAE just trained
    model = train_base(new_dit(), enc, [ident, looks], os.path.join(a.work, "base"), 100 if q else 1200)
    model.requires_grad_(False)
    dit_sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_safetensors_atomic(os.path.join(a.out, "toy_wan21_i2v.safetensors"), dit_sd, {"note": "toy Wan2.1 I2V"})
    steps_ct, steps_sft = (60, 20) if q else (a.steps_ct, a.steps_sft)
    results = {"vae": vae_roundtrip(vae, ct), "base": evaluate(model, enc, vae, ct, None, True, cache)}
    lora_dir = os.path.join(a.work, "lora")
    token, token_path = train_lora(model, enc, ct, sft, lora_dir, steps_ct, steps_sft, a.rank, True, cache,
                                   a.input_perturbation, a.shift)
    results["token_lora"] = evaluate(model, enc, vae, ct, token, True, cache)
    results["token_lora_first_frame"] = evaluate(model, enc, vae, ct, token, True, cache, "first_frame")
    plain, plain_path = train_lora(model, enc, ct, sft, lora_dir, steps_ct, steps_sft, a.rank, False, cache,
                                   a.input_perturbation, a.shift)
    results["plain_lora"] = evaluate(model, enc, vae, ct, plain, False, cache)
    shutil.copy(token_path, os.path.join(a.out, "toy_dreamstyle_token_lora.safetensors"))
    shutil.copy(plain_path, os.path.join(a.out, "toy_dreamstyle_plain_lora.safetensors"))
    results["setup"] = {"styles": STYLES, "size": SIZE, "frames": FRAMES, "dit": [DIM, FFN, LAYERS],
                        "vae_dim": VAE_DIM, "steps_ct": steps_ct, "steps_sft": steps_sft, "rank": a.rank,
                        "input_perturbation": a.input_perturbation, "shift": a.shift, "quick": q}
    with open(os.path.join(a.out, "eval.json"), "w") as f:
        json.dump(results, f, indent=1)
    for k, v in results.items():
        log(f"{k}: {json.dumps(v)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
