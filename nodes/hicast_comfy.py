"""ComfyUI side of HiCAST: the patched base call, trainable views of a MODEL / VAE, memory-managed modules,
progress bars. The nodes in nodes/hicast.py stay glue; the tensor work is in hicast/.

Nothing here changes a MODEL or VAE a node received: a trainer works on a clone of its ModelPatcher whose
weights reach autograd as copies (one weight wrapper per comfy.ops weight: ComfyUI's cast path then copies the
weight, and a copy made outside inference mode is a normal tensor; loose inference-mode parameters, e.g.
TAESD's vae_scale, get an object patch with a copy), loaded by ComfyUI's memory manager like any other clone,
which restores the originals when it unloads the clone. Every base call goes through BaseModel.apply_model with the clone's model_options, so LoRAs,
patches, wrappers and model_sampling patches apply, and apply_model casts inputs to the compute dtype.
"""
import numpy as np
import torch
from PIL import Image

import comfy.model_management as mm
import comfy.model_patcher
import comfy.patcher_extension
import comfy.utils

from ..hicast.denoiser_base import DenoiserBase, abar_from_sigmas


def module_patcher(module):
    """A pack-owned torch module under ComfyUI's memory manager (loaded per run with load_models_gpu)."""
    return comfy.model_patcher.ModelPatcher(module, load_device=mm.get_torch_device(),
                                            offload_device=mm.unet_offload_device())


class Hosted(torch.nn.Module):
    """Holds a third-party model (transformers) for a ModelPatcher, which sets bookkeeping attributes such as
    .device that transformers models make read-only; the model is .inner."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner


def hicast_module(kind, name, module, map_type):
    """The HICAST_MODULE value nodes pass around."""
    module = module.eval().requires_grad_(False)
    return {"kind": kind, "name": name, "module": module, "map_type": map_type, "patcher": module_patcher(module)}


def load(*patchers):
    mm.load_models_gpu([p for p in patchers if p is not None])


def _as_is(weight):
    return weight  # the cast path already made the copy (copy=True whenever a weight function is set)


def autograd_view(patcher):
    """A clone of PATCHER whose comfy.ops weights are copied on use, so gradients can flow through the frozen
    network to its inputs without touching (or replacing) the shared, possibly inference-mode, weights."""
    view = patcher.clone()
    wrapped = set()
    for name, m in view.model.named_modules():
        if hasattr(m, "weight_function"):
            for p in ("weight", "bias"):
                if getattr(m, p, None) is not None:
                    key = f"{name}.{p}" if name else p
                    view.add_weight_wrapper(key, _as_is)
                    wrapped.add(key)
    for key, p in view.model.named_parameters():
        if key not in wrapped and p.is_inference():
            view.add_object_patch(key, torch.nn.Parameter(p.detach().clone(), requires_grad=False))
    for key, b in view.model.named_buffers():
        if b.is_inference():
            view.add_object_patch(key, b.clone())
    return view


class PatchedDenoiser:
    """denoise(x, sigma, context, transformer_options) -> x0_hat through PATCHER's apply_model, as a sampler
    calls it: the patcher's transformer_options (patches, wrappers) merged with the caller's, and its
    model_function_wrapper around apply_model."""

    def __init__(self, patcher):
        self.patcher = patcher

    def __call__(self, x, sigma, context, transformer_options):
        p = self.patcher
        opts = comfy.patcher_extension.merge_nested_dicts(p.model_options.get("transformer_options", {}),
                                                          transformer_options)
        comfy.patcher_extension.merge_nested_dicts(opts.setdefault("wrappers", {}), p.wrappers, copy_dict1=False)
        opts.setdefault("cond_or_uncond", [0])
        opts["sigmas"] = sigma
        c = {"c_crossattn": context, "transformer_options": opts}
        wrapper = p.model_options.get("model_function_wrapper")
        if wrapper is not None:
            return wrapper(p.model.apply_model, {"input": x, "timestep": sigma, "c": c,
                                                 "cond_or_uncond": opts["cond_or_uncond"]})
        return p.model.apply_model(x, sigma, **c)


def patched_base(patcher):
    """The trainers' base(x_t, t, context, transformer_options) -> eps over PATCHER (already loaded)."""
    return DenoiserBase(PatchedDenoiser(patcher), abar_from_sigmas(patcher.get_model_object("model_sampling").sigmas))


def trainable_decoder(vae, model, view):
    """decode(model latent) -> image 0..1 with gradients, through VIEW (an autograd_view of vae.patcher) in the
    VAE's own dtype; the VAE object is left as it was."""
    def decode(z):
        z = model.model.process_latent_out(z).to(device=view.load_device, dtype=vae.vae_dtype)
        return vae.process_output(view.model.decode(z).float())
    return decode


def preview(image):
    """A ProgressBar preview of one map / frame [H, W, 3] 0..1."""
    array = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    return "JPEG", Image.fromarray(array), 512


def progress_bar(total):
    """progress(done, n[, image]) for the cores: ComfyUI's progress bar (with a preview when an image is given)
    and the interrupt check."""
    bar = comfy.utils.ProgressBar(total)

    def update(done, n, image=None):
        mm.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, n, None if image is None else preview(image))
    return update
