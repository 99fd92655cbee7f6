"""DreamStyle nodes: set Wan2.1-I2V conditioning values and patch the model; the math lives in dreamstyle/."""
import dataclasses
import logging
import os
import uuid

import torch

import comfy.conds
import comfy.hooks
import comfy.model_management
import comfy.patcher_extension
import comfy.samplers
import comfy.utils
import folder_paths
import node_helpers
from comfy_api.latest import io
from nodes import common_ksampler

from ..dreamstyle.condition_latents import condition_latents, plan_layout
from ..dreamstyle.layout import FrameLayout
from ..dreamstyle.long_video import plan_chunks, stylize_in_chunks
from ..dreamstyle.lora_file import LoRAFileError, parse_lora, read_safetensors
from ..dreamstyle.token_lora import TokenLoRA, adapted_layer_names, linear_shape
from ..dreamstyle.video_padding import crop_video, fit_image, pad_video
from .dreamstyle_patch import FRAME_TYPES_KEY, apply_token_lora
from .guards import NodeInputError, finite, model_file
from .search import search_aliases

CATEGORY = "UniStyle/DreamStyle"
LAYOUT_KEY = "dreamstyle_layout"
RUN_ID_ATTR = "dreamstyle_run_id"
log = logging.getLogger("UniStyle.DreamStyle")


I2V_IN_CHANNELS = 36  # Wan2.1-I2V's patch embedding: 16 noise + 4 mask + 16 condition latent channels


def model_type_name(model):
    """What ComfyUI detected the model as (its model_config class, e.g. WAN21_I2V, WAN21_T2V, WAN21_Vace)."""
    config = getattr(model.model, "model_config", None)
    return type(config).__name__ if config is not None else type(model.model).__name__


def require_dreamstyle_base(model, input_name="model"):
    """The Wan diffusion model of `model`, or a clear refusal when it is not Wan2.1-I2V-like.

    DreamStyle injects its conditions through the I2V channels (mask + condition latent) and adapts the
    Wan blocks; a T2V, VACE, Fun-Control or other-family model would run and silently ignore the video."""
    dm = model.get_model_object("diffusion_model")
    dm = getattr(dm, "_orig_mod", dm)  # a torch.compile'd module (older TorchCompileModel object-patches it)
    embed = getattr(dm, "patch_embedding", None)
    channels = getattr(embed, "in_channels", None)
    kind = model_type_name(model)
    if (channels != I2V_IN_CHANNELS or not getattr(model.model, "image_to_video", False)
            or not adapted_layer_names(dm)):
        got = f"{channels} input channels" if channels is not None else "no Wan patch embedding"
        raise NodeInputError(
            f"{input_name}: DreamStyle needs a Wan2.1-I2V model (14B 480p/720p I2V, or a 1.3B I2V-like model: "
            f"a {I2V_IN_CHANNELS}-channel patch embedding for 16 noise + 4 mask + 16 condition latent channels); "
            f"this is {kind} ({type(dm).__name__}, {got}), which would ignore the video. Load a Wan2.1 I2V "
            "checkpoint with UNETLoader")
    return dm


def as_rgb(image, name):
    """IMAGE [B, H, W, C] with C in {1, 3, 4} -> [B, H, W, 3]; grey is repeated, alpha dropped."""
    if image.ndim != 4 or image.shape[0] == 0 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"{name}: expected an IMAGE batch [frames, height, width, 1|3|4] with at least one frame, "
                         f"got shape {list(image.shape)}")
    if image.shape[-1] == 1:
        return image.expand(-1, -1, -1, 3)
    return image[..., :3]


def still_for_layout(image, name, layout):
    """The first image of `image`, converted to RGB and fitted to the video's size, padded like the video."""
    image = as_rgb(image, name)
    if image.shape[0] > 1:
        log.info("%s: %d images given, DreamStyle uses the first", name, image.shape[0])
    still = image[:1]
    if tuple(still.shape[1:3]) != (layout.pixel_height, layout.pixel_width):
        log.info("%s: resized from %dx%d to the video's %dx%d (cover, center crop)", name, still.shape[2],
                 still.shape[1], layout.pixel_width, layout.pixel_height)
        still = fit_image(still, layout.pixel_height, layout.pixel_width)
    return pad_video(still, frames=1)


def layout_of(samples, name="samples"):
    if LAYOUT_KEY not in samples:
        raise ValueError(f"{name}: this latent carries no DreamStyle layout; connect the sampler output whose "
                         "latent_image came from DreamStyleConditioning")
    return FrameLayout.from_dict(samples[LAYOUT_KEY])


def trim_latent(samples):
    """The video frames of a sampled DreamStyle latent, without the first-frame and style-image frames."""
    layout = layout_of(samples)
    out = {k: v for k, v in samples.items() if k not in ("noise_mask", "batch_index")}
    out["samples"] = samples["samples"][:, :, layout.video_slice]
    out[LAYOUT_KEY] = dataclasses.replace(layout, first_frame=0, style_image=0).to_dict()
    return out


class BaseCheck:
    """An APPLY_MODEL wrapper riding on DreamStyle conditioning (a ComfyUI conditioning hook), so it runs in
    any sampler, with or without the token LoRA: it refuses a base that is not Wan2.1-I2V-like (the latent's
    fit to the layout is checked before sampling by LatentIdentityCheck)."""

    def __deepcopy__(self, memo):
        return self

    def __call__(self, executor, x, t, *args, **kwargs):
        base = executor.class_obj
        dm = getattr(base, "diffusion_model", None)
        dm = getattr(dm, "_orig_mod", dm)
        channels = getattr(getattr(dm, "patch_embedding", None), "in_channels", None)
        if channels != I2V_IN_CHANNELS or not getattr(base, "image_to_video", False):
            kind = type(getattr(base, "model_config", base)).__name__
            raise NodeInputError(f"model: DreamStyle needs a Wan2.1-I2V model ({I2V_IN_CHANNELS}-channel patch "
                                 f"embedding); this is {kind} ({channels} input channels), which would ignore the "
                                 "video. Load a Wan2.1 I2V checkpoint with UNETLoader")
        return executor(x, t, *args, **kwargs)


class LatentIdentityCheck:
    """An OUTER_SAMPLE wrapper riding on the same conditioning hook: it runs before ComfyUI prepares the
    conditions (where a latent of another size would fail inside the model's concat_cond with a raw torch
    error) and compares the latent with the one this conditioning run built: its size, the run's identity
    stamped on the latent tensor, and, for a latent that went through other nodes, the held condition frames
    (z^1st, z^s) it must carry."""

    def __init__(self, layout, reference, run_id):
        self.layout = layout
        self.run_id = run_id
        self.held = layout.condition_mask().bool()
        self.held_reference = reference[:1, :, self.held].detach().float().cpu()
        self.hw = tuple(reference.shape[-2:])

    def __deepcopy__(self, memo):
        return self

    def _refuse(self, why):
        raise NodeInputError(f"latent_image: {why} ({self.layout.describe()}); connect the latent and the "
                             "positive/negative of the same DreamStyleConditioning node")

    def __call__(self, executor, noise, latent_image, *args, **kwargs):
        lay = self.layout
        if latent_image.ndim != 5 or latent_image.shape[2] != lay.total:
            got = f"{latent_image.shape[2]} latent frames" if latent_image.ndim == 5 else f"shape {list(latent_image.shape)}"
            self._refuse(f"has {got} but the conditioning was built for {lay.total}")
        stamp = getattr(latent_image, RUN_ID_ATTR, None)
        if stamp is not None and stamp != self.run_id:
            self._refuse("comes from another DreamStyleConditioning run than this positive/negative, which was built")
        if tuple(latent_image.shape[-2:]) != self.hw:
            self._refuse(f"is {latent_image.shape[-1]}x{latent_image.shape[-2]} latent pixels but the conditioning was "
                         f"built for {self.hw[1]}x{self.hw[0]}")
        if stamp is None and self.held.any():
            held = latent_image[:, :, self.held.to(latent_image.device)].float().cpu()
            ref = self.held_reference
            err = (held - ref).abs().amax()
            if not bool(err <= 1e-3 * (1.0 + ref.abs().amax())):
                self._refuse("holds other condition frames (first frame / style image) than this conditioning")
        return executor(noise, latent_image, *args, **kwargs)


def layout_check_hook(layout, reference, run_id):
    """The conditioning hook carrying both checks: identity before sampling, base and frames at the model."""
    hook = comfy.hooks.TransformerOptionsHook(
        transformers_dict={"wrappers": {
            comfy.patcher_extension.WrappersMP.OUTER_SAMPLE: {
                "dreamstyle_latent_identity": [LatentIdentityCheck(layout, reference, run_id)]},
            comfy.patcher_extension.WrappersMP.APPLY_MODEL: {"dreamstyle_base_check": [BaseCheck()]}}},
        hook_scope=comfy.hooks.EnumHookScope.AllConditioning)
    group = comfy.hooks.HookGroup()
    group.add(hook)
    return group


def with_frame_types(conditioning, frame_types):
    """Attach the layout's per-frame token types as a model condition (it reaches the model's forward)."""
    out = []
    for tensor, values in conditioning:
        values = values.copy()
        values["model_conds"] = dict(values.get("model_conds", {}), **{FRAME_TYPES_KEY: frame_types})
        out.append([tensor, values])
    return out


def dreamstyle_conditioning(positive, negative, vae, video, style_image=None, first_frame=None, clip_vision_output=None):
    """VAE-encode the inputs, build the layout, set the conditioning values -> (positive, negative, latent, info)."""
    video = as_rgb(video, "video")
    layout = plan_layout(video.shape[0], video.shape[1], video.shape[2],
                         first_frame=first_frame is not None, style_image=style_image is not None)
    pbar = comfy.utils.ProgressBar(1 + layout.first_frame + layout.style_image)
    z_raw = vae.encode(pad_video(video, layout.padded_frames))
    pbar.update(1)
    z_first = z_style = None
    if first_frame is not None:
        z_first = vae.encode(still_for_layout(first_frame, "first_frame", layout))
        pbar.update(1)
    if style_image is not None:
        z_style = vae.encode(still_for_layout(style_image, "style_image", layout))
        pbar.update(1)
    latents = condition_latents(layout, z_raw, z_first, z_style)
    frame_types = comfy.conds.CONDRegular(layout.frame_types().unsqueeze(0))
    values = {"concat_latent_image": latents.condition,
              "concat_mask": 1.0 - latents.mask}  # ComfyUI's WAN21.concat_cond feeds the model 1 - concat_mask
    if clip_vision_output is not None:
        values["clip_vision_output"] = clip_vision_output
    run_id = uuid.uuid4().hex
    check = layout_check_hook(layout, latents.reference, run_id)
    positive, negative = (comfy.hooks.set_hooks_for_conditioning(
        with_frame_types(node_helpers.conditioning_set_values(c, values), frame_types), check) for c in (positive, negative))
    device = comfy.model_management.intermediate_device()
    samples = latents.reference.to(device)
    setattr(samples, RUN_ID_ATTR, run_id)  # the run's identity travels with the tensor the sampler receives
    latent = {"samples": samples, "noise_mask": latents.denoise_mask.to(device),
              LAYOUT_KEY: layout.to_dict()}
    info = layout.describe()
    log.info("DreamStyleConditioning: %s", info)
    return positive, negative, latent, info


def decode_to_input(vae, samples):
    """Trim the condition frames, decode, and cut the padding: exactly the input's frame count and size."""
    samples = trim_latent(samples)
    layout = layout_of(samples)
    images = vae.decode(samples["samples"])
    if images.ndim == 4:
        images = images.unsqueeze(0)
    return torch.cat([crop_video(v, layout.pixel_frames, layout.pixel_height, layout.pixel_width) for v in images])


def style_condition_inputs(first_frame_tooltip):
    """The optional style conditions every DreamStyle sampling node takes."""
    return [
        io.Image.Input("style_image", optional=True,
                       tooltip="Style reference image, appended after the video (first image of the batch)."),
        io.Image.Input("first_frame", optional=True, tooltip=first_frame_tooltip),
        io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                  tooltip="CLIP-vision encoding of the style image, for Wan's image branch."),
    ]


class DreamStyleConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleConditioning",
            display_name="DreamStyle Stylize Video: style transfer conditioning",
            **search_aliases("stylize video", "video style transfer", "style transfer"),
            category=CATEGORY,
            description="Injects the original video (channel-wise, mask 0), an optional stylized first frame "
                        "(prepended, mask 1) and an optional style image (appended, mask 1, plus its CLIP-vision "
                        "features) into Wan2.1-I2V conditioning. Text stays in positive/negative.",
            inputs=[
                io.Conditioning.Input("positive", tooltip="Text conditioning (the style may be described here)."),
                io.Conditioning.Input("negative", tooltip="Negative text conditioning."),
                io.Vae.Input("vae", tooltip="The Wan2.1 VAE."),
                io.Image.Input("video", tooltip="The original video to stylize (any frame count and size: it is "
                               "padded to 4k+1 frames and multiples of 16 and cut back after decoding)."),
                *style_condition_inputs("The video's first frame already stylized (e.g. by an image model), prepended "
                                        "before the video. Resized to the video's size if it differs."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive"),
                io.Conditioning.Output(display_name="negative"),
                io.Latent.Output(display_name="latent"),
                io.String.Output(display_name="layout", tooltip="What was padded and how the frames are laid out."),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, vae, video, style_image=None, first_frame=None,
                clip_vision_output=None) -> io.NodeOutput:
        return io.NodeOutput(*dreamstyle_conditioning(positive, negative, vae, video, style_image, first_frame,
                                                      clip_vision_output))


class DreamStyleTokenLoRALoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleTokenLoRALoader",
            display_name="DreamStyle Token LoRA Loader",
            category=CATEGORY,
            description="Applies a token-specific LoRA (shared down, one up per token type: first frame, video, "
                        "style image) to a Wan2.1 model at forward time. Plain LoRAs load with one up for all.",
            inputs=[
                io.Model.Input("model", tooltip="A Wan2.1-I2V model (UNETLoader)."),
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list("loras"),
                               tooltip="A .safetensors file in models/loras (DreamStyle token LoRA or plain LoRA)."),
                io.Float.Input("strength", default=1.0, min=-4.0, max=4.0, step=0.05,
                               tooltip="LoRA scale s in x_out = W x + s · W_up W_down x; 0 leaves the model as is."),
            ],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, lora_name, strength) -> io.NodeOutput:
        strength = finite(strength, "strength")
        dm = require_dreamstyle_base(model, "model")
        if strength == 0:
            return io.NodeOutput(model)
        path = model_file("loras", lora_name, "lora_name")
        names = adapted_layer_names(dm)
        shapes = {n: linear_shape(comfy.utils.get_attr(dm, n)) for n in names}

        def read_loras():
            try:
                parsed, unmatched = parse_lora(*read_safetensors(path), shapes)
            except LoRAFileError as e:
                raise NodeInputError(f"{e} [{lora_name}]") from e
            if unmatched:
                log.warning("DreamStyleTokenLoRALoader: %d entries of %s match no layer and are ignored, e.g. %s",
                            len(unmatched), lora_name, ", ".join(unmatched[:3]))
            log.info("DreamStyleTokenLoRALoader: %s adapts %d of %d layers", lora_name, len(parsed), len(names))
            return {name: TokenLoRA.from_weights(down, ups, alpha).requires_grad_(False)
                    for name, (down, ups, alpha) in parsed.items()}

        stat = os.stat(path)
        key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
        return io.NodeOutput(apply_token_lora(model, read_loras, strength, lora_key=key))


class DreamStyleTrimLatent(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleTrimLatent",
            display_name="DreamStyle Trim Condition Frames",
            category=CATEGORY,
            description="Removes the prepended first-frame and appended style-image latent frames after sampling, "
                        "so the stock VAEDecode decodes only the video.",
            inputs=[io.Latent.Input("samples", tooltip="The sampler output for a DreamStyleConditioning latent.")],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, samples) -> io.NodeOutput:
        return io.NodeOutput(trim_latent(samples))


class DreamStyleDecode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleDecode",
            display_name="DreamStyle Decode Stylized Video",
            category=CATEGORY,
            description="Trims the condition frames, decodes with the VAE and cuts the padding, giving exactly the "
                        "input video's frame count and size.",
            inputs=[io.Vae.Input("vae", tooltip="The Wan2.1 VAE."),
                    io.Latent.Input("samples", tooltip="The sampler output for a DreamStyleConditioning latent.")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, vae, samples) -> io.NodeOutput:
        return io.NodeOutput(decode_to_input(vae, samples))


class DreamStyleLongVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleLongVideo",
            display_name="DreamStyle Stylize Video (long, in chunks)",
            **search_aliases("stylize video", "long video style transfer"),
            category=CATEGORY,
            description="Stylizes a video of any length in chunks of at most 81 frames that overlap by at least one "
                        "frame. Each chunk after the first takes, as its stylized first frame, the stitched output "
                        "frame where its own video starts; overlapping frames are cross-faded; every input frame "
                        "appears exactly once in the output.",
            inputs=[
                io.Model.Input("model", tooltip="Wan2.1-I2V model, usually through DreamStyleTokenLoRALoader."),
                io.Conditioning.Input("positive", tooltip="Text conditioning."),
                io.Conditioning.Input("negative", tooltip="Negative text conditioning."),
                io.Vae.Input("vae", tooltip="The Wan2.1 VAE."),
                io.Image.Input("video", tooltip="The original video, any number of frames."),
                io.Int.Input("chunk_frames", default=81, min=5, max=81, step=4,
                             tooltip="Frames per chunk (4k+1, at most 81 as in DreamStyle's training clips)."),
                io.Int.Input("overlap", default=1, min=1, max=76,
                             tooltip="Frames shared by consecutive chunks (at least 1: the next chunk starts on a "
                                     "frame already stylized, its first-frame condition); cross-faded in the output."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff, control_after_generate=True,
                             tooltip="Noise seed of the first chunk; chunk i uses seed + i."),
                io.Int.Input("steps", default=30, min=1, max=10000, tooltip="Sampling steps per chunk."),
                io.Float.Input("cfg", default=5.0, min=0.0, max=100.0, step=0.1, tooltip="Classifier-free guidance."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS, default="uni_pc",
                               tooltip="Sampler, as in KSampler."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS, default="simple",
                               tooltip="Scheduler, as in KSampler."),
                *style_condition_inputs("Stylized first frame of the whole video (first chunk only; later chunks "
                                        "take the stitched output frame where they start)."),
                io.Boolean.Input("colour_match", default=False, optional=True,
                                 tooltip="Match each chunk's colour statistics to the output on the frames it "
                                         "shares with the previous chunk (counters colour drift along the chain)."),
            ],
            outputs=[io.Image.Output(display_name="video")],
        )

    @classmethod
    def execute(cls, model, positive, negative, vae, video, chunk_frames, overlap, seed, steps, cfg, sampler_name,
                scheduler, style_image=None, first_frame=None, clip_vision_output=None,
                colour_match=False) -> io.NodeOutput:
        require_dreamstyle_base(model, "model")
        video = as_rgb(video, "video")
        chunks = plan_chunks(video.shape[0], chunk_frames, overlap)
        pbar = comfy.utils.ProgressBar(len(chunks))

        def stylize(i, chunk, frames, first):
            pos, neg, latent, info = dreamstyle_conditioning(positive, negative, vae, frames, style_image, first,
                                                             clip_vision_output)
            log.info("DreamStyleLongVideo: chunk %d/%d, frames %d..%d: %s", i + 1, len(chunks), chunk.start,
                     chunk.stop - 1, info)
            sampled = common_ksampler(model, seed + i, steps, cfg, sampler_name, scheduler, pos, neg, latent)[0]
            pbar.update(1)
            return decode_to_input(vae, sampled)

        return io.NodeOutput(stylize_in_chunks(video, stylize, chunk_frames, overlap, first_frame, colour_match))


NODES = [DreamStyleConditioning, DreamStyleTokenLoRALoader, DreamStyleTrimLatent, DreamStyleDecode, DreamStyleLongVideo]
