"""Stage 2 (HiCAST): train the style adapters and the style encoder with the base UNet frozen.

Per step: x_t = sqrt(abar_t) z_c + sqrt(1 - abar_t) eps; eps_hat = UNet(x_t, t, [c ; f_s], adapters(maps));
I_cs = decode(x0_hat); L = w_c L_c(I_cs, I_c) + w_s L_s(I_cs, I_s) + w_adv L_adv(D(I_cs)), and the patch
discriminator D takes one step on L_D with style images as real.

BASE is any callable base(x, t, context, transformer_options) -> eps with ComfyUI's UNetModel calling
convention (input_block_patch in transformer_options["patches"]).
"""
from dataclasses import dataclass

import torch

from .feature_injection import AdapterInjection
from .feature_net import RandomFeatureNet
from .losses import content_loss, discriminator_loss, generator_adversarial_loss, style_loss
from .noise_schedule import add_noise, alphas_cumprod, predict_x0
from .patch_discriminator import PatchDiscriminator
from .style_encoder import append_style_tokens
from .batching import tile_to_batch
from .training_loop import run_resumable, step_generator


@dataclass
class AdapterBatch:
    content_latent: torch.Tensor   # [B, 4, h, w], the VAE latent of the content image
    content_image: torch.Tensor    # [B, 3, 8h, 8w] 0..1
    maps: dict                     # {adapter name: [B, 8h, 8w, 3] 0..1}
    style_image: torch.Tensor      # [B or 1, 3, H, W] 0..1


def train_adapters(base, levels, adapters, style_encoder, batches, decode, context, steps, *, feature_net=None,
                   discriminator=None, lr=1e-4, weights=(1.0, 1.0, 0.05), t_max=600, checkpoint_path=None,
                   save_every=50, progress=None, seed=0):
    """Train ADAPTERS ({name: StyleAdapter}) and STYLE_ENCODER; returns the per-step loss history.

    BATCHES(step, generator) -> AdapterBatch; DECODE(latent) -> image 0..1 with gradients; CONTEXT [1|B, T, D].
    """
    feature_net = feature_net or RandomFeatureNet()
    discriminator = discriminator or PatchDiscriminator()
    w_c, w_s, w_adv = weights
    abar = alphas_cumprod()
    gen_params = [p for a in adapters.values() for p in a.parameters()] + list(style_encoder.parameters())
    for m in (*adapters.values(), style_encoder, discriminator):
        m.train().requires_grad_(True)
    opt_g = torch.optim.AdamW(gen_params, lr=lr)
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))

    def step_fn(step):
        g = step_generator(seed, step)
        b = batches(step, g)
        z0 = b.content_latent
        t = torch.randint(0, t_max, (z0.shape[0],), generator=g).to(z0.device)
        noise = torch.randn(z0.shape, generator=g).to(z0)
        x_t = add_noise(z0, noise, t, abar)
        inject = AdapterInjection(levels, [(n, a, b.maps[n], 1.0) for n, a in adapters.items()])
        ctx = append_style_tokens(tile_to_batch(context, z0.shape[0], "context"), style_encoder(b.style_image), 1.0)
        eps = base(x_t, t, ctx, {"patches": {"input_block_patch": [inject]}, "cond_or_uncond": [0]})
        image = decode(predict_x0(x_t, eps, t, abar))
        with torch.no_grad():
            f_c, f_s = feature_net(b.content_image), feature_net(b.style_image)
        f_o = feature_net(image)
        l_c, l_s = content_loss(f_o, f_c), style_loss(f_o, f_s)
        l_adv = generator_adversarial_loss(discriminator(image))
        loss = w_c * l_c + w_s * l_s + w_adv * l_adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        l_d = discriminator_loss(discriminator(b.style_image), discriminator(image.detach()))
        opt_d.zero_grad(set_to_none=True)
        l_d.backward()
        opt_d.step()
        return {"loss": loss.item(), "content": l_c.item(), "style": l_s.item(), "adv": l_adv.item(), "disc": l_d.item()}

    modules = {**{f"adapter.{n}": a for n, a in adapters.items()}, "style_encoder": style_encoder,
               "discriminator": discriminator}
    return run_resumable(step_fn, modules, {"g": opt_g, "d": opt_d}, steps, checkpoint_path, save_every, progress)
