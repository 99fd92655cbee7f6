"""DreamStyle training costs on the CPU, with ComfyUI's own WanModel (2 blocks, dim 512, FFN 2048).

1. One optimizer step (forward, flow-matching loss on the video frames, backward, AdamW) with the token
   LoRA routed by the DreamStyle layout (first frame + 5 video frames + style image) vs the same step
   with a plain LoRA of the same rank (every token through one up matrix). Interleaved rounds, median,
   one torch thread (with two threads on a loaded 2-core machine the samples varied by 50%).
2. Peak memory of such a step, each variant in a fresh subprocess (resident memory sampled every ms
   during the first step, minus before it):
   token vs plain LoRA, and with vs without gradient checkpointing.
3. The memory plan (dreamstyle/training_memory_plan.py) against the device bytes measured by the CPU meter
   (training_memory_meter.py) during two real training steps of ComfyUI's WanModel (dim 128, FFN 352 = 2.75 D
   as Wan's 13824 = 2.7 x 5120, so that the self-attention is the largest sub-layer as at 14B; 4 blocks,
   rank 16, 17 frames of 128x192: 576 tokens) on ComfyUI's pytorch attention (SDPA: its CPU kernel keeps
   O(tokens), as the GPU kernels the plan counts): fp32 / fp8 / bf16 bases, with and without checkpointing
   (block and sublayer granularity), block swap and offloads; the block-swap peak fraction; the plan of Wan2.1-I2V 14B
   at 480x832x81, rank 64 (its shapes from a meta-device WanModel, no weights).
"""
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench._timing import metric  # noqa: E402

DIM, FFN, LAYERS, RANK = 512, 2048, 2, 64
LATENT_H, LATENT_W, VIDEO_FRAMES = 16, 26, 5


def setup(token_specific=True, checkpointing=False, layers=LAYERS, granularity=None):
    """One training step's function; with GRANULARITY (block | sublayer) the base runs through the trainer's
    StreamedBase with gradient checkpointing at that granularity."""
    torch.set_num_threads(1)  # one thread: on a shared 2-core machine, thread oversubscription swamps the ratio
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.ldm.wan.model as wan_model
    from dreamstyle.condition_latents import condition_latents, plan_layout
    from dreamstyle.flow_matching import flow_matching_loss, training_pair
    from dreamstyle.layout import VIDEO
    from dreamstyle.token_lora import TokenLoRAHooks, tokens_per_frame
    from dreamstyle.training import frozen, gradient_checkpointing, new_loras
    from dreamstyle.training_block_swap import StreamedBase
    torch.manual_seed(0)
    model = wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=DIM, ffn_dim=FFN, num_heads=DIM // 128,
                               num_layers=layers, text_dim=4096, freq_dim=256, operations=torch.nn)
    loras = new_loras(model, RANK)
    for lora in loras.values():
        torch.nn.init.normal_(lora.up, std=1e-3)
    params = [p for lora in loras.values() for p in lora.parameters()]
    opt = torch.optim.AdamW(params, lr=1e-4)
    hooks = TokenLoRAHooks(loras)
    hooks.attach(model)
    layout = plan_layout(4 * (VIDEO_FRAMES - 1) + 1, LATENT_H * 8, LATENT_W * 8, first_frame=True, style_image=True)
    g = torch.Generator().manual_seed(1)
    z = lambda f: torch.randn(1, 16, f, LATENT_H, LATENT_W, generator=g)  # noqa: E731
    lat = condition_latents(layout, z(VIDEO_FRAMES), z(1), z(1))
    x, target = training_pair(lat, z(VIDEO_FRAMES), z(layout.total), torch.tensor([0.6]))
    context = torch.randn(1, 64, 4096, generator=g)
    clip = torch.randn(1, 257, 1280, generator=g)
    t = torch.tensor([600.0])
    types = layout.frame_types() if token_specific else torch.full((layout.total,), VIDEO)
    n = tokens_per_frame(LATENT_H, LATENT_W)
    runner = (gradient_checkpointing(model, checkpointing) if granularity is None else
              StreamedBase(model, "cpu", torch.float32, checkpoint=True, granularity=granularity).active())
    stack = [frozen(model), runner]
    for s in stack:
        s.__enter__()

    def step():
        with hooks.routing(types, n):
            loss = flow_matching_loss(model(x, t, context, clip_fea=clip), target, layout)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    step.contexts = stack  # keep the contexts alive: collecting them would run their exits
    return step


def time_steps(rounds=7, **variants):
    """Median seconds of a step of each variant ({name: setup kwargs}; default token vs plain LoRA), the
    variants interleaved round by round."""
    steps = {name: setup(**kw) for name, kw in (variants or {"token": {}, "plain": {"token_specific": False}}).items()}
    for fn in steps.values():
        fn()
    samples = {k: [] for k in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure_peak(step):
    """Peak resident memory growth (MB) during STEP(), sampled every millisecond by a thread."""
    import threading
    base, peak, done = rss_mb(), [0.0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb() - base)
            time.sleep(0.001)
    thread = threading.Thread(target=sample)
    thread.start()
    try:
        step()
    finally:
        done.set()
        thread.join()
    return peak[0]


def peak_rss_growth(token_specific, checkpointing, layers=LAYERS):
    """MB of resident-memory growth during the first training step (AdamW state included, the same size
    for both LoRA kinds), in a fresh process, so no freed memory of an earlier step is reused."""
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); import json; "
            f"from bench.dreamstyle_training import setup, measure_peak; "
            f"s = setup({token_specific}, {checkpointing}, {layers}); print(json.dumps(measure_peak(s)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


PLAN_CASES = [("fp32", False, 0, False, "block"), ("fp32", True, 0, False, "block"), ("fp32", True, 0, False, "sublayer"),
              ("fp32", True, 2, False, "block"), ("fp8_e4m3fn", False, 0, False, "block"),
              ("fp8_e4m3fn", True, 0, False, "block"), ("fp8_e4m3fn", True, 0, False, "sublayer"),
              ("fp8_e4m3fn", True, 3, False, "block"), ("fp8_e4m3fn", True, 3, True, "block"),
              ("fp8_e4m3fn", True, 3, "opt", "block"), ("fp8_e4m3fn", True, 3, "opt", "sublayer"),
              ("bf16", True, 0, False, "block"), ("bf16", True, 0, False, "sublayer"), ("bf16", True, 0, "opt", "sublayer")]
PLAN_FFN = 352


def memory_cases():
    """{(base, checkpointing, swap, offload, granularity): (planned, measured) bytes} on a small ComfyUI WanModel."""
    import tempfile
    torch.set_num_threads(1)
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.ldm.modules.attention as attention
    import comfy.ldm.wan.model as wan_model
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "dreamstyle_training"))
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    work = tempfile.mkdtemp()
    dataset = os.path.join(work, "pairs")
    build_synthetic_benchmark(dataset, scenes=2, styles=["palette"], frames=17, height=128, width=192, refs=1,
                              heldout=0.0, seed=0)
    cpu_default, wan_model.optimized_attention = wan_model.optimized_attention, attention.attention_pytorch
    try:
        return {case: memory_case(dataset, work, *case) for case in PLAN_CASES}
    finally:
        wan_model.optimized_attention = cpu_default


def memory_case(dataset, work, base, ckpt, swap, offload, granularity):
    """(planned, measured) peak device bytes of two training steps of one PLAN_CASES case."""
    import comfy.ldm.wan.model as wan_model
    import comfy.ops
    from toy_wan import toy_encoders
    from dreamstyle.training import DreamStyleTrainer, TrainConfig
    from dreamstyle.training_memory_meter import measured_peak
    from dreamstyle.training_memory_plan import WanShape, plan

    def build(dtype, ops):
        return wan_model.WanModel(model_type="i2v", in_dim=36, out_dim=16, dim=128, ffn_dim=PLAN_FFN, num_heads=4,
                                  num_layers=4, text_dim=4096, freq_dim=256, operations=ops, dtype=dtype)
    torch.manual_seed(0)
    model = build(None, comfy.ops.disable_weight_init)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.02)
    if base != "fp32":  # as UNETLoader loads a bf16 / fp8 file: manual-cast ops
        stored = build(torch.bfloat16 if base == "bf16" else torch.float8_e4m3fn, comfy.ops.manual_cast)
        stored.load_state_dict(model.state_dict())
        model = stored
    cfg = TrainConfig(steps=2, rank=16, batch=1, ratio="0:1:0", gradient_checkpointing=ckpt, block_swap=swap,
                      offload_activations=bool(offload), optimizer_offload=offload == "opt",
                      checkpoint_granularity=granularity)
    trainer = DreamStyleTrainer(model, toy_encoders(), dataset, cfg,
                                os.path.join(work, f"{base}{ckpt}{swap}{offload}{granularity}"))
    trainer.data.encode_all()
    text_len = max(trainer.data.text(p.caption_ns).shape[0] for p in trainer.pairs)
    planned = plan(WanShape.from_model(model), 17, 128, 192, rank=16, base_dtype=base,
                   compute_dtype="fp32" if base == "fp32" else "bf16", gradient_checkpointing=ckpt,
                   block_swap=swap, prefetch=False, text_len=text_len, offload_activations=bool(offload),
                   optimizer_offload=offload == "opt", granularity=granularity).peak
    return planned, measured_peak(trainer)


def plan_14b():
    """Plans of Wan2.1-I2V 14B (ComfyUI's WanModel on the meta device: shapes only), 480x832x81, rank 64."""
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    from dreamstyle.training_memory_plan import WanShape, plan
    from scripts.fixtures.wan import released_i2v_14b
    shape = WanShape.from_model(released_i2v_14b())
    settings = {"fp8_swap": dict(base_dtype="fp8_e4m3fn", block_swap=shape.blocks, offload_activations=True,
                                 optimizer_offload=True),
                "fp8": dict(base_dtype="fp8_e4m3fn"),
                "bf16": dict(base_dtype="bf16", offload_activations=True, optimizer_offload=True)}
    return {(name, g): plan(shape, 81, 480, 832, rank=64, granularity=g, **kw)
            for name, kw in settings.items() for g in ("block", "sublayer")}


def case_name(base, ckpt, swap, offload, granularity):
    return (f"{base}{f' ckpt ({granularity})' if ckpt else ''}{f' swap {swap}' if swap else ''}"
            f"{' offload' if offload else ''}{' + AdamW on CPU' if offload == 'opt' else ''}")


def memory_metrics():
    cases = memory_cases()
    worst = max(max(p / m, m / p) for p, m in cases.values())
    detail = "; ".join(f"{case_name(*case)}: plan {p / 2**20:.1f} MB vs measured {m / 2**20:.1f} MB"
                       for case, (p, m) in cases.items())
    unswapped = cases[("fp8_e4m3fn", True, 0, False, "block")][1]
    swapped = cases[("fp8_e4m3fn", True, 3, False, "block")][1]
    plans = plan_14b()
    fp8, bf16 = plans[("fp8_swap", "sublayer")], plans[("bf16", "sublayer")]

    def terms(p):
        return ", ".join(f"{k} {v / 1e9:.1f}" for k, v in p.terms.items())

    def block(name):
        p = plans[(name, "block")]
        return f"with block checkpointing {p.peak / 1e9:.1f} GB (working set {p.terms['working set of one unit'] / 1e9:.1f})"
    return {
        "dreamstyle_train_plan_vs_measured_peak": metric(
            worst, "<= 1.10", "ratio",
            f"worst of plan/measured and measured/plan over {len(cases)} cases, ComfyUI WanModel dim 128, FFN {PLAN_FFN}, 4 blocks, "
            f"rank 16, 576 tokens, ComfyUI's pytorch attention, device bytes counted by the CPU meter: {detail}"),
        "dreamstyle_train_block_swap_peak_resident_fraction": metric(
            swapped / unswapped, "report", "ratio",
            f"measured peak device bytes, fp8 base + block checkpointing, 3 of 4 blocks swapped ({swapped / 2**20:.1f} MB) "
            f"vs none ({unswapped / 2**20:.1f} MB): at this size the fp8 blocks are small next to the LoRA + AdamW "
            f"and activations, which do not swap. The plan at 14B, fp8 + sublayer checkpointing: "
            f"{fp8.peak / 1e9:.1f} GB with all 40 blocks swapped, the block inputs and AdamW offloaded vs "
            f"{plans[('fp8', 'sublayer')].peak / 1e9:.1f} GB with neither "
            f"({fp8.peak / plans[('fp8', 'sublayer')].peak:.2f})"),
        "dreamstyle_train_plan_14b_fp8_swap_gb": metric(
            fp8.peak / 1e9, "<= 24", "GB",
            f"Wan2.1-I2V 14B, 480x832x81 (34320 tokens), rank 64, fp8 base, all 40 blocks swapped, sublayer "
            f"checkpointing with the block inputs offloaded, AdamW on the CPU, bf16 compute, an O(tokens) attention "
            f"kernel: {terms(fp8)}; {block('fp8_swap')}"),
        "dreamstyle_train_plan_14b_bf16_gb": metric(
            bf16.peak / 1e9, "<= 48", "GB",
            f"Wan2.1-I2V 14B, 480x832x81, rank 64, bf16 base resident, sublayer checkpointing with the block inputs "
            f"offloaded, AdamW on the CPU, no swap, an O(tokens) attention kernel: {terms(bf16)}; {block('bf16')}"),
    }


def run():
    t = time_steps()
    g = time_steps(block={"granularity": "block"}, sublayer={"granularity": "sublayer"})
    shape = (f"WanModel dim {DIM}, FFN {FFN}, {LAYERS} blocks, rank {RANK}, 1+{VIDEO_FRAMES}+1 latent frames of "
             f"{LATENT_H}x{LATENT_W}")
    token_mb, plain_mb = peak_rss_growth(True, False), peak_rss_growth(False, False)
    deep_mb, ckpt_mb = peak_rss_growth(True, False, 8), peak_rss_growth(True, True, 8)
    return {
        "dreamstyle_token_lora_train_step_vs_plain": metric(
            t["token"] / t["plain"], "<= 1.15", "ratio",
            f"forward + loss + backward + AdamW, {shape}; token {t['token'] * 1e3:.0f} ms vs plain "
            f"{t['plain'] * 1e3:.0f} ms (median of 7 interleaved rounds)"),
        "dreamstyle_token_lora_train_peak_memory_vs_plain": metric(
            token_mb / max(plain_mb, 1e-6), "<= 1.10", "ratio",
            f"peak RSS growth during a step, fresh processes: token {token_mb:.0f} MB vs plain {plain_mb:.0f} MB"),
        "dreamstyle_token_lora_train_peak_rss_growth_mb": metric(
            token_mb, "report", "MB", f"peak RSS growth during a token-LoRA step, {shape}, no checkpointing"),
        "dreamstyle_train_gradient_checkpointing_peak_memory": metric(
            ckpt_mb / max(deep_mb, 1e-6), "< 1.0", "ratio",
            f"token-LoRA step of the same model with 8 blocks, gradient checkpointing ({ckpt_mb:.0f} MB) vs "
            f"without ({deep_mb:.0f} MB)"),
        "dreamstyle_train_sublayer_checkpointing_step_time_vs_block": metric(
            g["sublayer"] / g["block"], "report", "ratio",
            f"token-LoRA step, {shape}, gradient checkpointing through the trainer's StreamedBase: sublayer "
            f"({g['sublayer'] * 1e3:.0f} ms: the attention layers recomputed once more) vs block "
            f"({g['block'] * 1e3:.0f} ms), median of 7 interleaved rounds"),
        **memory_metrics(),
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
