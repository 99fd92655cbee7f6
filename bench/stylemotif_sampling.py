"""StyleMotif: cost of the style path, side by side in one run.

1. Sampling time of stylized vs unstylized generation (same MLD-sized model, same seed, 50 DDIM steps
   with classifier-free guidance, then the VAE decode), i.e. the work of StyleMotifStylize given a
   style vector. Encoding the style motion is a separate one-off (StyleMotifEncodeStyle, cached by
   ComfyUI) and is reported in "how", not in the ratio. Each round times plain and stylized back to
   back, in alternating order (ABBA, so slow drifts of a shared machine's load hit both alike); the value is
   the median of the per-round ratios of the sampling thread's CPU time (time.thread_time: the time it
   waited for a core while other jobs ran is left out), with the wall-clock median and fastest-of-N ratios
   beside it. Single-threaded: on a shared 2-core machine a 2-thread team stalls whenever one thread is
   descheduled, which made earlier 2-thread runs swing by 7x between rounds (and gave 1.35 for this ratio).
2. Trainable parameters of the style path: StyleMotif trains only the style encoder (cross-norm has
   none) vs a SMooDi-style dual-branch adaptor built here: a trainable copy of the denoiser blocks
   fed with the style feature, joined to the frozen main branch by zero-initialised linear layers
   after every block (its style encoder is frozen, as in SMooDi).
Also reported: the dual-branch sampling time vs unstylized (no goal; context for the paper's -22.5%).

    python bench/run_all.py stylemotif_sampling
"""
import copy
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._timing import median_ratio, single_threaded  # noqa: E402
from stylemotif.model import StyleMotif, StyleMotifConfig  # noqa: E402
from stylemotif.sampling import ddim_sample  # noqa: E402

CONFIG = StyleMotifConfig(frames=196)  # the released MLD HumanML3D sizes (D 256, 9-layer skip transformers, CLIP-L 768)
STEPS, ROUNDS = 50, 30


class DualBranchDenoiser(nn.Module):
    """SMooDi-style style adaptor around a frozen LatentDenoiser (for comparison only): a trainable copy
    of the skip transformer reads the tokens plus the projected style feature; after every block its
    state joins the frozen main branch through a zero-initialised linear layer."""

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.latent_dim, self.latent_tokens, self.check_text = base.latent_dim, base.latent_tokens, base.check_text
        self.style_in = nn.Linear(base.latent_dim, base.latent_dim)
        self.branch = copy.deepcopy(base.encoder)
        self.zero = nn.ModuleList([nn.Linear(base.latent_dim, base.latent_dim) for _ in range(base.depth)])
        for z in self.zero:
            nn.init.zeros_(z.weight)
            nn.init.zeros_(z.bias)

    def trainable_parameters(self):
        return sum(p.numel() for m in (self.style_in, self.branch, self.zero) for p in m.parameters())

    def forward(self, z, t, text, style=None, gamma=0.0, fuse_after=0):
        h = self.base.tokens(z, t, text)
        states = []
        self.branch(h + self.style_in(style)[:, None], after_block=lambda k, x: states.append(x) or x)
        out = self.base.encoder(h, after_block=lambda k, x: x + self.zero[k](states[k]))
        return out[:, :self.latent_tokens]


def _time(fn):
    """(wall seconds, this thread's CPU seconds) of fn()."""
    t0, c0 = time.perf_counter(), time.thread_time()
    fn()
    return time.perf_counter() - t0, time.thread_time() - c0


@single_threaded
def run():
    load_before = os.getloadavg()
    torch.manual_seed(0)
    model = StyleMotif(CONFIG).eval()
    dual = DualBranchDenoiser(model.denoiser).eval()
    text, null = torch.randn(1, 1, CONFIG.text_dim), torch.randn(1, 1, CONFIG.text_dim)
    style_motion = torch.randn(60, 263)

    def plain():
        model.generate(text, null, frames=CONFIG.frames, steps=STEPS, seed=0)

    style = model.encode_style(style_motion)

    def stylized():
        model.generate(text, null, frames=CONFIG.frames, style=style, steps=STEPS, seed=0)

    def dual_branch():
        model.vae.decode(ddim_sample(dual, text, null, STEPS, 0, 7.5, style), CONFIG.frames)

    def encode():
        model.encode_style(style_motion)

    with torch.no_grad():
        for fn in (plain, stylized, dual_branch):  # warm-up
            fn()
        fns = {"plain": plain, "stylized": stylized, "dual": dual_branch, "encode": encode}
        wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
        for r in range(ROUNDS):
            order = ("plain", "stylized", "dual") if r % 2 == 0 else ("dual", "stylized", "plain")
            for k in order + ("encode",):
                w, c = _time(fns[k])
                wall[k].append(w)
                cpu[k].append(c)
    load = f"load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after"
    med = {k: min(v) for k, v in wall.items()}

    def ratio(k):
        """(CPU-time median per-round ratio, wall median per-round ratio, wall fastest-of-N ratio) of k vs plain."""
        return median_ratio(cpu, k, "plain"), median_ratio(wall, k, "plain"), med[k] / med["plain"]
    sty, sty_wall, sty_fast = ratio("stylized")
    dual_r, dual_wall, dual_fast = ratio("dual")
    style_path = sum(p.numel() for p in model.style_encoder.parameters())
    dual_path = dual.trainable_parameters()
    return {
        "stylemotif_stylized_vs_plain_sampling": {
            "value": sty, "goal": "<= 1.02", "unit": "ratio",
            "how": f"median of the per-round CPU-time ratios over {ROUNDS} rounds (plain and stylized back to back, order alternating; "
                   f"wall-clock: median per-round {sty_wall:.3f}, fastest-of-{ROUNDS} {sty_fast:.3f}), the MLD-faithful "
                   f"denoiser at the released sizes (D 256, 9-layer skip transformer, CLIP-L 768, random weights), {STEPS} DDIM steps with CFG 7.5, "
                   f"batch 1, {CONFIG.frames} frames + VAE decode, 1 CPU thread, {load}; fastest wall-clock round plain {med['plain']:.3f}s "
                   f"vs stylized {med['stylized']:.3f}s; one-off style-motion "
                   f"encoding (60 frames) {med['encode']:.3f}s"},
        "stylemotif_style_path_params_vs_dual_branch": {
            "value": style_path / dual_path, "goal": "< 1.0", "unit": "ratio",
            "how": f"trainable style-path parameters: StyleMotif style encoder {style_path:,} (cross-norm: 0) vs "
                   f"SMooDi-style adaptor (trainable block copy + zero linears + style input) {dual_path:,}"},
        "stylemotif_dual_branch_vs_plain_sampling": {
            "value": dual_r, "goal": "-", "unit": "ratio",
            "how": f"context: the dual-branch adaptor sampled the same way in the same rounds, median per-round CPU-time ratio "
                   f"(wall-clock: median per-round {dual_wall:.3f}, fastest-of-{ROUNDS} {dual_fast:.3f}; fastest {med['dual']:.3f}s "
                   f"vs plain {med['plain']:.3f}s); {load}"},
    }


if __name__ == "__main__":
    for k, v in run().items():
        print(k, v)
