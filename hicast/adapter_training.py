"""Stages 1 and 2 (HiCAST): the style-transfer trainer. Stage 2 trains the style adapters and the style encoder
with the base UNet frozen; stage 1 (the image-model fine-tune) trains the UNet with the style encoder, no adapters.

Per step, a batch of (content, style) pairs: x_t = sqrt(abar_t) z_c + sqrt(1 - abar_t) eps;
eps_hat = UNet(x_t, t, [c ; f_s], adapters(maps)); I_cs = decode(x0_hat);
L = w_c L_c(I_cs, I_c) + w_s L_s(I_cs, I_s) + w_adv L_adv(D(I_cs)), each pair with its own style I_s, and
the patch discriminator D takes one step on L_D with the style images as real.

BASE is any callable base(x_t, t, context, transformer_options) -> eps with ComfyUI's UNetModel calling
convention (input_block_patch in transformer_options["patches"]); nodes give hicast.denoiser_base.DenoiserBase
over ComfyUI's patched apply_model.
"""
from dataclasses import dataclass

import torch

from .batching import tile_to_batch
from .feature_injection import AdapterInjection
from .losses import content_loss, discriminator_loss, generator_adversarial_loss, style_loss
from .noise_schedule import add_noise, alphas_cumprod, predict_x0
from .patch_discriminator import PatchDiscriminator
from .style_encoder import append_style_tokens
from .training_loop import run_resumable, step_generator


@dataclass
class AdapterBatch:
    content_latent: torch.Tensor   # [B, 4, h, w], the VAE latent of the content image
    content_image: torch.Tensor    # [B, 3, 8h, 8w] 0..1
    maps: dict                     # {adapter name: [B, 8h, 8w, 3] 0..1}
    style_image: torch.Tensor      # [B or 1, 3, H, W] 0..1, the style of each pair
    style_clip: torch.Tensor = None  # [B or 1, W] CLIP-vision features of those styles (CLIP-trained encoders)


class PairSampler:
    """Arbitrary-style batches: each step draws BATCH_SIZE content items and, independently, one of the N styles
    for each pair (HiCAST trains on (content, style) pairs, not one style)."""

    def __init__(self, latents, images, maps, styles, batch_size=1, styles_clip=None):
        n = latents.shape[0]
        if images.shape[0] != n or any(m.shape[0] != n for m in maps.values()):
            raise ValueError(f"maps: expected one map per content image ({n}), got "
                             f"{[m.shape[0] for m in maps.values()]}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected at least 1, got {batch_size}")
        if styles_clip is not None and styles_clip.shape[0] != styles.shape[0]:
            raise ValueError(f"clip_vision_output: expected one CLIP-vision output per style image ({styles.shape[0]}), "
                             f"got {styles_clip.shape[0]}")
        self.latents, self.images, self.maps, self.styles, self.batch_size = latents, images, maps, styles, batch_size
        self.styles_clip = styles_clip

    def __call__(self, step, g):
        ci = torch.randint(0, self.latents.shape[0], (self.batch_size,), generator=g)
        si = torch.randint(0, self.styles.shape[0], (self.batch_size,), generator=g)
        return AdapterBatch(self.latents[ci.to(self.latents.device)], self.images[ci.to(self.images.device)],
                            {k: m[ci.to(m.device)] for k, m in self.maps.items()}, self.styles[si.to(self.styles.device)],
                            None if self.styles_clip is None else self.styles_clip[si.to(self.styles_clip.device)])


def adapter_step_loss(base, levels, adapters, style_encoder, batch, decode, context, feature_net, discriminator,
                      g, abar, weights=(1.0, 1.0, 0.05), t_max=600):
    """The generator loss of one batch and its terms (and the decoded image for the discriminator step)."""
    w_c, w_s, w_adv = weights
    z0 = batch.content_latent
    t = torch.randint(0, t_max, (z0.shape[0],), generator=g).to(z0.device)
    noise = torch.randn(z0.shape, generator=g).to(z0)
    x_t = add_noise(z0, noise, t, abar)
    inject = AdapterInjection(levels, [(n, a, batch.maps[n], 1.0) for n, a in adapters.items()])
    patches = {"input_block_patch": [inject]} if inject else {}
    style = tile_to_batch(batch.style_image, z0.shape[0], "style images")
    clip = None if batch.style_clip is None else tile_to_batch(batch.style_clip, z0.shape[0], "clip_vision_output")
    ctx = append_style_tokens(tile_to_batch(context, z0.shape[0], "context"), style_encoder(style, clip), 1.0)
    eps = base(x_t, t, ctx, {"patches": patches, "cond_or_uncond": [0]})
    image = decode(predict_x0(x_t, eps, t, abar))
    with torch.no_grad():
        f_c, f_s = feature_net(batch.content_image), feature_net(style)
    f_o = feature_net(image)
    l_c = content_loss(f_o, f_c, getattr(feature_net, "content_levels", None))
    l_s = style_loss(f_o, f_s)
    l_adv = generator_adversarial_loss(discriminator(image))
    return w_c * l_c + w_s * l_s + w_adv * l_adv, {"content": l_c, "style": l_s, "adv": l_adv}, image, style


def train_adapters(base, levels, adapters, style_encoder, batches, decode, context, steps, *, feature_net,
                   discriminator=None, lr=1e-4, weights=(1.0, 1.0, 0.05), t_max=600, abar=None, checkpoint_path=None,
                   save_every=50, progress=None, seed=0, job=None, base_modules=None, max_grad_norm=None):
    """Train ADAPTERS ({name: StyleAdapter}) and STYLE_ENCODER; returns the per-step loss history.

    BASE_MODULES ({name: module} of the base, e.g. {"unet": unet}; stage 1) are trained along, else the base
    stays frozen (stage 2). MAX_GRAD_NORM: clip the generator gradients' total norm to it (None: no clipping).

    BATCHES(step, generator) -> AdapterBatch (e.g. a PairSampler); DECODE(latent) -> image 0..1 with gradients;
    CONTEXT [1|B, T, D]; FEATURE_NET: the frozen phi (VGG19Features; RandomFeatureNet in tests); ABAR: the base
    model's abar_t table (SD's scaled-linear schedule when None).
    """
    discriminator = discriminator or PatchDiscriminator()
    abar = alphas_cumprod() if abar is None else abar
    base_modules = base_modules or {}
    generators = (*adapters.values(), style_encoder, *base_modules.values())
    gen_params = [p for m in generators for p in m.parameters()]
    for m in (*generators, discriminator):
        m.train().requires_grad_(True)
    opt_g = torch.optim.AdamW(gen_params, lr=lr)
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

    def step_fn(step):
        g = step_generator(seed, step)
        loss, terms, image, style = adapter_step_loss(base, levels, adapters, style_encoder, batches(step, g), decode,
                                                      context, feature_net, discriminator, g, abar, weights, t_max)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(gen_params, max_grad_norm)
        opt_g.step()
        l_d = discriminator_loss(discriminator(style), discriminator(image.detach()))
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}, "disc": l_d.item()}

    modules = {**{f"adapter.{n}": a for n, a in adapters.items()}, "style_encoder": style_encoder,
               "discriminator": discriminator, **{f"base.{n}": m for n, m in base_modules.items()}}
    return run_resumable(step_fn, modules, {"g": opt_g, "d": opt_d}, steps, checkpoint_path, save_every, progress, job)
