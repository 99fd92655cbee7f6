"""HiCAST nodes: control-map extractors, adapter/style/temporal patches and trainers; the math lives in hicast/."""
import logging
import os

import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..hicast.adapter_training import AdapterBatch, train_adapters
from ..hicast.depth_maps import depth_map, depth_model_folders, load_depth_model
from ..hicast.edge_maps import canny, soft_edge
from ..hicast.feature_injection import AdapterInjection
from ..hicast.image_batch import as_rgb_batch
from ..hicast.module_files import load_module, save_module
from ..hicast.onnx_pose import load_onnx_pose, onnx_model_files, onnx_pose_map
from ..hicast.pose_maps import pose_map
from ..hicast.segmentation_maps import segmentation_map
from ..hicast.style_adapter import StyleAdapter
from ..hicast.style_encoder import StyleEncoder, append_style_tokens
from ..hicast.temporal_layers import TemporalInjection, TemporalLayers
from ..hicast.temporal_smoothing import temporal_smooth
from ..hicast.temporal_training import train_temporal_layers
from ..hicast.unet_levels import encoder_levels
from .backends import missing, onnxruntime_providers
from .search import search_aliases

CATEGORY = "UniStyle/HiCAST"
ADAPTERS, DEPTH, POSE = "hicast_adapters", "hicast_depth", "hicast_pose"
NONE_INSTALLED = "(none installed)"
MEDIAPIPE = "mediapipe (built in)"
log = logging.getLogger("hicast")
HiCASTModule = io.Custom("HICAST_MODULE")

for _kind in (ADAPTERS, DEPTH, POSE):
    if _kind not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(_kind, os.path.join(folder_paths.models_dir, _kind))


def progress_bar(total):
    bar = comfy.utils.ProgressBar(total)
    return lambda done, n: bar.update_absolute(done, n)


def device_images(image, name):
    return as_rgb_batch(image, name).to(comfy.model_management.get_torch_device())


def unet_levels(model):
    cfg = getattr(model.model.model_config, "unet_config", {})
    if not all(k in cfg for k in ("model_channels", "channel_mult", "num_res_blocks")):
        raise ValueError(f"model: expected an SD-family UNet (model_channels/channel_mult/num_res_blocks), "
                         f"got {type(model.model).__name__}")
    return encoder_levels(cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"])


def expect_kind(module, kind, name):
    if module is not None and module["kind"] != kind:
        raise ValueError(f"{name}: expected a HiCAST {kind} file, got a {module['kind']} ({module['name']})")
    return module


class StyleTokenPatch:
    """attn2_patch: context and value become [c ; lambda * f_s] in every cross-attention."""

    def __init__(self, tokens, scale):
        self.tokens, self.scale = tokens, scale

    def __call__(self, n, context, value, extra_options):
        return (n, append_style_tokens(context, self.tokens, self.scale),
                append_style_tokens(value if value is not None else context, self.tokens, self.scale))


class HiCASTEdgeMap(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTEdgeMap", display_name="HiCAST Edge Map", category=CATEGORY,
            description="Canny or soft edges of an image batch, batched on the host device, same size as the input.",
            inputs=[
                io.Image.Input("image", tooltip="Image or video frames to extract edges from."),
                io.Combo.Input("method", options=["canny", "soft_edge"], default="canny",
                               tooltip="canny: thin binary edges (cv2 on CPU, kornia on GPU); soft_edge: blurred Sobel magnitude."),
                io.Int.Input("low_threshold", default=100, min=0, max=1000,
                             tooltip="Canny: lower hysteresis threshold on the 0..255 gradient magnitude."),
                io.Int.Input("high_threshold", default=200, min=0, max=1000,
                             tooltip="Canny: upper hysteresis threshold; edges start above it."),
                io.Float.Input("soft_sigma", default=1.5, min=0.3, max=10.0, step=0.1,
                               tooltip="soft_edge: Gaussian blur sigma before the gradient."),
            ],
            outputs=[io.Image.Output(display_name="edge_map")],
        )

    @classmethod
    def execute(cls, image, method, low_threshold, high_threshold, soft_sigma) -> io.NodeOutput:
        images = device_images(image, "image")
        out = canny(images, low_threshold, high_threshold) if method == "canny" else soft_edge(images, soft_sigma)
        return io.NodeOutput(out.to(comfy.model_management.intermediate_device()))


class HiCASTSegmentationMap(io.ComfyNode):
    BACKENDS = ("mediapipe",)

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTSegmentationMap", display_name="HiCAST Segmentation Map", category=CATEGORY,
            description="Person/background map from mediapipe's bundled selfie-segmentation model (ADE20K colours).",
            inputs=[io.Image.Input("image", tooltip="Image or video frames."),
                    io.Float.Input("threshold", default=0.5, min=0.01, max=0.99, step=0.01,
                                   tooltip="Person probability above which a pixel is coloured as person.")],
            outputs=[io.Image.Output(display_name="segmentation_map")],
        )

    @classmethod
    def execute(cls, image, threshold) -> io.NodeOutput:
        return io.NodeOutput(segmentation_map(as_rgb_batch(image, "image"), threshold))


def pose_choices():
    """mediapipe's model and the .onnx files in models/hicast_pose, each only when its runtime imports."""
    builtin = [] if missing("mediapipe") else [MEDIAPIPE]
    onnx = [] if missing("onnxruntime") else [f for root in folder_paths.get_folder_paths(POSE)
                                              for f in onnx_model_files(root)]
    return builtin + onnx or [NONE_INSTALLED]


class HiCASTPoseMap(io.ComfyNode):
    BACKENDS = ("mediapipe", "onnxruntime")

    @classmethod
    def define_schema(cls):
        choices = pose_choices()
        return io.Schema(
            node_id="HiCASTPoseMap", display_name="HiCAST Pose Map", category=CATEGORY,
            description="OpenPose-coloured body skeleton from mediapipe's bundled pose model or an OpenPose-style "
                        "ONNX body model in models/hicast_pose.",
            inputs=[io.Image.Input("image", tooltip="Image or video frames."),
                    io.Combo.Input("pose_model", options=choices, default=choices[0],
                                   tooltip="mediapipe's bundled model, or an .onnx in models/hicast_pose (BGR image "
                                           "[1, 3, H, W] -> keypoint heatmaps [1, 18|19, h, w], e.g. OpenPose body)."),
                    io.Float.Input("min_visibility", default=0.5, min=0.0, max=1.0, step=0.05,
                                   tooltip="mediapipe: keypoints less visible than this are left out."),
                    io.Float.Input("heatmap_threshold", default=0.1, min=0.0, max=1.0, step=0.01,
                                   tooltip="ONNX: keypoints whose heatmap peak is below this are left out."),
                    io.Int.Input("detect_resolution", default=512, min=64, max=2048, step=8,
                                 tooltip="ONNX: short side the model sees when it does not fix its input size."),
                    io.Int.Input("stick_width", default=4, min=1, max=32, tooltip="Limb thickness in pixels.")],
            outputs=[io.Image.Output(display_name="pose_map")],
        )

    @classmethod
    def execute(cls, image, pose_model, min_visibility, heatmap_threshold, detect_resolution,
                stick_width) -> io.NodeOutput:
        images = as_rgb_batch(image, "image")
        if pose_model == MEDIAPIPE:
            return io.NodeOutput(pose_map(images, min_visibility, stick_width))
        folder = folder_paths.get_folder_paths(POSE)[0]
        path = folder_paths.get_full_path(POSE, pose_model) or os.path.join(folder, pose_model)
        session = load_onnx_pose(path, folder, onnxruntime_providers())
        return io.NodeOutput(onnx_pose_map(session, images, heatmap_threshold, stick_width, detect_resolution,
                                           progress=progress_bar(images.shape[0])))


def depth_choices():
    found = [d for root in folder_paths.get_folder_paths(DEPTH) for d in depth_model_folders(root)]
    return found or [NONE_INSTALLED]


class HiCASTDepthMap(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTDepthMap", display_name="HiCAST Depth Map", category=CATEGORY,
            description="Relative depth (near = white) from a DPT / Depth Anything folder in models/hicast_depth.",
            inputs=[io.Image.Input("image", tooltip="Image or video frames."),
                    io.Combo.Input("depth_model", options=depth_choices(),
                                   tooltip="A transformers depth model folder (config.json + model.safetensors) in models/hicast_depth."),
                    io.Int.Input("resolution", default=518, min=64, max=2048, step=14,
                                 tooltip="Short side the model sees (rounded to its patch size).")],
            outputs=[io.Image.Output(display_name="depth_map")],
        )

    @classmethod
    def execute(cls, image, depth_model, resolution) -> io.NodeOutput:
        roots = folder_paths.get_folder_paths(DEPTH)
        folder = next((os.path.join(r, depth_model) for r in roots if os.path.isdir(os.path.join(r, depth_model))),
                      os.path.join(roots[0], depth_model) if depth_model != NONE_INSTALLED else roots[0])
        model = load_depth_model(folder, comfy.model_management.get_torch_device())
        images = as_rgb_batch(image, "image")
        return io.NodeOutput(depth_map(model, images, resolution, progress=progress_bar(images.shape[0])))


class HiCASTTemporalSmooth(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTTemporalSmooth", display_name="HiCAST Temporal Smooth", category=CATEGORY,
            description="Motion-gated smoothing of per-frame control maps so they do not flicker.",
            inputs=[io.Image.Input("maps", tooltip="Per-frame control maps of a video."),
                    io.Image.Input("frames", optional=True,
                                   tooltip="The source video frames; motion is detected on them (else on the maps)."),
                    io.Float.Input("strength", default=0.7, min=0.0, max=0.95, step=0.05,
                                   tooltip="How much of the previous smoothed map is kept where nothing moves."),
                    io.Float.Input("motion_threshold", default=0.04, min=0.0, max=1.0, step=0.005,
                                   tooltip="Local mean frame difference above which a region counts as moving.")],
            outputs=[io.Image.Output(display_name="maps")],
        )

    @classmethod
    def execute(cls, maps, strength, motion_threshold, frames=None) -> io.NodeOutput:
        return io.NodeOutput(temporal_smooth(maps, frames, strength, motion_threshold))


class HiCASTAdapterLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTAdapterLoader", display_name="HiCAST Adapter Loader", category=CATEGORY,
            description="Load a HiCAST safetensors file: style adapter, style encoder or temporal layers.",
            inputs=[io.Combo.Input("adapter_name", options=folder_paths.get_filename_list(ADAPTERS),
                                   tooltip="A file in models/hicast_adapters.")],
            outputs=[HiCASTModule.Output(display_name="hicast_module")],
        )

    @classmethod
    def execute(cls, adapter_name) -> io.NodeOutput:
        module, meta = load_module(folder_paths.get_full_path_or_raise(ADAPTERS, adapter_name))
        return io.NodeOutput({"kind": meta["hicast_kind"], "name": adapter_name, "module": module,
                              "map_type": meta.get("map_type", "")})


class HiCASTApplyStyleAdapters(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        slots = []
        for i in (1, 2, 3):
            slots += [HiCASTModule.Input(f"adapter_{i}", optional=True, tooltip=f"Style adapter {i} (from HiCAST Adapter Loader)."),
                      io.Image.Input(f"map_{i}", optional=True, tooltip=f"Control map batch for adapter {i}."),
                      io.Float.Input(f"weight_{i}", default=1.0, min=-5.0, max=5.0, step=0.05,
                                     tooltip=f"Weight of adapter {i}'s features; 0 turns it off.")]
        return io.Schema(
            node_id="HiCASTApplyStyleAdapters", display_name="HiCAST Style Transfer (apply adapters)",
            **search_aliases("style transfer", "image style transfer", "stylize image"), category=CATEGORY,
            description="Add weighted adapter features to the UNet encoder and the style image as extra cross-attention "
                        "tokens. All weights 0 and style scale 0 return the unpatched model.",
            inputs=[io.Model.Input("model", tooltip="An SD-family model (e.g. SD1.5)."), *slots,
                    HiCASTModule.Input("style_encoder", optional=True, tooltip="The HiCAST style encoder file."),
                    io.Image.Input("style_image", optional=True, tooltip="The style reference (grey and RGBA are converted)."),
                    io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                              tooltip="CLIP-vision output of the style image, for encoders trained with it."),
                    io.Float.Input("style_scale", default=1.0, min=0.0, max=5.0, step=0.05,
                                   tooltip="lambda in [c ; lambda * f_s]: how strongly the style image conditions the UNet.")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, style_scale, style_encoder=None, style_image=None, clip_vision_output=None,
                **slots) -> io.NodeOutput:
        levels = unet_levels(model)
        entries = []
        for i in (1, 2, 3):
            adapter, maps, weight = slots.get(f"adapter_{i}"), slots.get(f"map_{i}"), slots.get(f"weight_{i}", 1.0)
            if adapter is None or weight == 0:
                continue
            expect_kind(adapter, "style_adapter", f"adapter_{i}")
            if maps is None:
                raise ValueError(f"map_{i}: adapter_{i} ({adapter['name']}) is connected but has no control map")
            entries.append((f"{adapter['name']} (adapter_{i})", adapter["module"], as_rgb_batch(maps, f"map_{i}"), weight))
        patched = model.clone()
        inject = AdapterInjection(levels, entries)
        if inject:
            patched.set_model_input_block_patch(inject)
        if style_scale != 0 and style_encoder is not None and style_image is not None:
            encoder = expect_kind(style_encoder, "style_encoder", "style_encoder")["module"]
            style = as_rgb_batch(style_image, "style_image").permute(0, 3, 1, 2)
            embeds = None if clip_vision_output is None else clip_vision_output["image_embeds"]
            with torch.no_grad():
                tokens = encoder(style, embeds)
            patched.set_model_attn2_patch(StyleTokenPatch(tokens, style_scale))
        return io.NodeOutput(patched)


class HiCASTStyleConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTStyleConditioning", display_name="HiCAST Style Transfer Conditioning",
            **search_aliases("style transfer"), category=CATEGORY,
            description="Text-free HiCAST: the style tokens f_s are the whole cross-attention condition "
                        "(positive = lambda * f_s, negative = zeros of the same shape).",
            inputs=[HiCASTModule.Input("style_encoder", tooltip="The HiCAST style encoder file."),
                    io.Image.Input("style_image", tooltip="The style reference (grey and RGBA are converted)."),
                    io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                              tooltip="CLIP-vision output of the style image, for encoders trained with it."),
                    io.Float.Input("style_scale", default=1.0, min=0.0, max=5.0, step=0.05,
                                   tooltip="lambda multiplying the style tokens.")],
            outputs=[io.Conditioning.Output(display_name="positive"), io.Conditioning.Output(display_name="negative")],
        )

    @classmethod
    def execute(cls, style_encoder, style_image, style_scale, clip_vision_output=None) -> io.NodeOutput:
        encoder = expect_kind(style_encoder, "style_encoder", "style_encoder")["module"]
        style = as_rgb_batch(style_image, "style_image")[:1].permute(0, 3, 1, 2)
        embeds = None if clip_vision_output is None else clip_vision_output["image_embeds"][:1]
        with torch.no_grad():
            tokens = style_scale * encoder(style, embeds)
        return io.NodeOutput([[tokens, {}]], [[torch.zeros_like(tokens), {}]])


class HiCASTApplyTemporalLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTApplyTemporalLayers", display_name="HiCAST Stylize Video (temporal layers)",
            **search_aliases("stylize video", "video style transfer"), category=CATEGORY,
            description="Video AST: attention across the frames of the latent batch after each encoder level.",
            inputs=[io.Model.Input("model", tooltip="An SD-family model, optionally already patched with adapters."),
                    HiCASTModule.Input("temporal_layers", tooltip="A HiCAST temporal-layers file.")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, temporal_layers) -> io.NodeOutput:
        layers = expect_kind(temporal_layers, "temporal_layers", "temporal_layers")["module"]
        patched = model.clone()
        patched.set_model_input_block_patch(TemporalInjection(unet_levels(model), layers))
        return io.NodeOutput(patched)


def trainable_copy(t):
    """A normal (non-inference) tensor: ComfyUI runs nodes under inference_mode, whose tensors autograd refuses."""
    return t.clone() if t.is_inference() else t


def frozen_for_backprop(module):
    """Freeze MODULE and replace inference-mode weights with normal copies so gradients can flow through it.

    Weights loaded by a node (under inference_mode) stay inference tensors even when their .data is swapped,
    so each such parameter/buffer is replaced by a new tensor."""
    for m in module.modules():
        for name, p in m._parameters.items():
            if p is not None and p.is_inference():
                m._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=False)
        for name, b in m._buffers.items():
            if b is not None and b.is_inference():
                m._buffers[name] = b.clone()
    return module.requires_grad_(False)


def comfy_base(model):
    """The diffusion model as base(x, t, context, transformer_options) -> eps for the trainers."""
    comfy.model_management.load_model_gpu(model)
    unet = frozen_for_backprop(model.model.diffusion_model)
    return lambda x, t, context, opts: unet(x, t.float(), context=context, transformer_options=opts)


def output_path(name):
    if not name.endswith(".safetensors") or os.sep in name or "/" in name:
        raise ValueError(f"output_name: expected a plain file name ending in .safetensors, got {name!r}")
    return os.path.join(folder_paths.get_folder_paths(ADAPTERS)[0], name)


class HiCASTTrainAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTTrainAdapter", display_name="HiCAST Train Adapter (stage 2)", category=CATEGORY,
            is_output_node=True,
            description="Train one style adapter and the style encoder with the model frozen (content, style and "
                        "adversarial losses); resumable; writes both files to models/hicast_adapters.",
            inputs=[io.Model.Input("model", tooltip="The frozen SD-family model."),
                    io.Vae.Input("vae", tooltip="Its VAE (encodes content images, decodes predictions for the losses)."),
                    io.Image.Input("content_images", tooltip="Content images (a batch of one size)."),
                    io.Image.Input("maps", tooltip="Their control maps, same count and size."),
                    io.Image.Input("style_image", tooltip="The style reference."),
                    io.Conditioning.Input("conditioning", tooltip="Base cross-attention context (e.g. an empty prompt)."),
                    io.String.Input("output_name", default="hicast_edge_adapter.safetensors",
                                    tooltip="Adapter file name; the style encoder goes next to it with _style_encoder."),
                    io.Combo.Input("map_type", options=["edge", "segmentation", "depth", "pose"],
                                   tooltip="Recorded in the file: which control map the adapter reads."),
                    io.Int.Input("steps", default=200, min=1, max=100000, tooltip="Total optimisation steps."),
                    io.Float.Input("learning_rate", default=1e-4, min=1e-6, max=1e-1, step=1e-5, tooltip="AdamW learning rate."),
                    io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1, tooltip="Seed of every step's noise and timestep.")],
            outputs=[HiCASTModule.Output(display_name="adapter"), HiCASTModule.Output(display_name="style_encoder"),
                     io.Float.Output(display_name="final_loss")],
        )

    @classmethod
    def execute(cls, model, vae, content_images, maps, style_image, conditioning, output_name, map_type, steps,
                learning_rate, seed) -> io.NodeOutput:
        path = output_path(output_name)
        levels = unet_levels(model)
        content = as_rgb_batch(content_images, "content_images")
        maps = as_rgb_batch(maps, "maps")
        if maps.shape[:3] != content.shape[:3]:
            raise ValueError(f"maps: expected {tuple(content.shape[:3])} (frames, height, width of content_images), "
                             f"got {tuple(maps.shape[:3])}")
        latent = model.model.process_latent_in(vae.encode(content)).float()
        with torch.inference_mode(False), torch.enable_grad():
            decoder = frozen_for_backprop(vae.first_stage_model.float())
            device = comfy.model_management.get_torch_device()

            def decode(z):  # model latent -> image 0..1, differentiable
                return vae.process_output(decoder.decode(model.model.process_latent_out(z)).float())

            context = trainable_copy(conditioning[0][0]).float().to(device)
            batch = AdapterBatch(trainable_copy(latent).to(device), trainable_copy(content).permute(0, 3, 1, 2).to(device),
                                 {map_type: trainable_copy(maps).to(device)},
                                 trainable_copy(as_rgb_batch(style_image, "style_image")[:1]).permute(0, 3, 1, 2).to(device))
            adapter = StyleAdapter([lv.channels for lv in levels]).to(device)
            encoder = StyleEncoder(context_dim=context.shape[-1]).to(device)
            history = train_adapters(comfy_base(model), levels, {map_type: adapter}, encoder, lambda step, g: batch,
                                     decode, context, steps, lr=learning_rate, seed=seed,
                                     checkpoint_path=path + ".ckpt", save_every=25, progress=progress_bar(steps))
        enc_path = path.replace(".safetensors", "_style_encoder.safetensors")
        save_module(path, adapter, "style_adapter", map_type=map_type)
        save_module(enc_path, encoder, "style_encoder", map_type="style")
        return io.NodeOutput({"kind": "style_adapter", "name": os.path.basename(path), "module": adapter.eval(), "map_type": map_type},
                             {"kind": "style_encoder", "name": os.path.basename(enc_path), "module": encoder.eval(), "map_type": "style"},
                             history[-1]["loss"])


class HiCASTTrainTemporalLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTTrainTemporalLayers", display_name="HiCAST Train Temporal Layers (stage 3)",
            category=CATEGORY, is_output_node=True,
            description="Train zero-initialised temporal layers on a clip with the harmonious consistency loss L_h; "
                        "resumable; writes the file to models/hicast_adapters.",
            inputs=[io.Model.Input("model", tooltip="The frozen (optionally adapter-patched) SD-family model."),
                    io.Vae.Input("vae", tooltip="Its VAE, to encode the clip."),
                    io.Image.Input("video", tooltip="Training clip frames (at least 2)."),
                    io.Conditioning.Input("conditioning", tooltip="Cross-attention context used while training."),
                    io.String.Input("output_name", default="hicast_temporal_layers.safetensors", tooltip="Output file name."),
                    io.Int.Input("clip_frames", default=8, min=2, max=64, tooltip="Frames per training clip (a random window)."),
                    io.Int.Input("steps", default=200, min=1, max=100000, tooltip="Total optimisation steps."),
                    io.Float.Input("learning_rate", default=1e-4, min=1e-6, max=1e-1, step=1e-5, tooltip="AdamW learning rate."),
                    io.Float.Input("lambda_local", default=0.1, min=0.0, max=10.0, step=0.01,
                                   tooltip="Weight of the local patch-contrastive term of L_h."),
                    io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1, tooltip="Seed of windows, noise and timesteps.")],
            outputs=[HiCASTModule.Output(display_name="temporal_layers"), io.Float.Output(display_name="final_loss")],
        )

    @classmethod
    def execute(cls, model, vae, video, conditioning, output_name, clip_frames, steps, learning_rate, lambda_local,
                seed) -> io.NodeOutput:
        path = output_path(output_name)
        frames = as_rgb_batch(video, "video")
        if frames.shape[0] < 2:
            raise ValueError(f"video: expected at least 2 frames, got {frames.shape[0]}")
        levels = unet_levels(model)
        latents = model.model.process_latent_in(vae.encode(frames)).float()
        n = min(clip_frames, latents.shape[0])
        with torch.inference_mode(False), torch.enable_grad():
            device = comfy.model_management.get_torch_device()
            latents = trainable_copy(latents).to(device)

            def clips(step, g):
                start = int(torch.randint(0, latents.shape[0] - n + 1, (1,), generator=g))
                return latents[start:start + n]

            layers = TemporalLayers([lv.channels for lv in levels]).to(device)
            context = trainable_copy(conditioning[0][0]).float().to(device)
            history = train_temporal_layers(comfy_base(model), levels, layers, clips, context, steps,
                                            lambda_local=lambda_local, lr=learning_rate, seed=seed,
                                            checkpoint_path=path + ".ckpt", save_every=25, progress=progress_bar(steps))
        save_module(path, layers, "temporal_layers", map_type="video")
        return io.NodeOutput({"kind": "temporal_layers", "name": os.path.basename(path), "module": layers.eval(),
                              "map_type": "video"}, history[-1]["loss_h"])


NODES = [HiCASTEdgeMap, HiCASTSegmentationMap, HiCASTDepthMap, HiCASTPoseMap, HiCASTTemporalSmooth,
         HiCASTAdapterLoader, HiCASTApplyStyleAdapters, HiCASTStyleConditioning, HiCASTApplyTemporalLayers,
         HiCASTTrainAdapter, HiCASTTrainTemporalLayers]
