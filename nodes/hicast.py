"""HiCAST nodes: control-map extractors, adapter/style/temporal patches and trainers. Glue only: the math lives
in hicast/, the ComfyUI plumbing (patched base call, memory manager, progress) in nodes/hicast_comfy.py."""
import logging
import os

import torch

import comfy.model_management
import folder_paths
from comfy_api.latest import io

from ..hicast.adapter_training import PairSampler, train_adapters
from ..hicast.checkpoint import fingerprint
from ..hicast.denoiser_base import trainable
from ..hicast.depth_maps import depth_map, depth_model_folders, load_depth_model
from ..hicast.feature_net import RandomFeatureNet
from ..hicast.edge_maps import canny, soft_edge
from ..hicast.feature_injection import AdapterInjection
from ..hicast.image_batch import as_rgb_batch
from ..hicast.module_files import load_module, save_module
from ..hicast.onnx_pose import load_onnx_pose, onnx_model_files, onnx_pose_map
from ..hicast.patch_discriminator import PatchDiscriminator
from ..hicast.pose_maps import pose_map
from ..hicast.segmentation_maps import segmentation_map
from ..hicast.semantic_segmentation import load_segmentation_model, segmentation_model_folders, semantic_map
from ..hicast.style_adapter import StyleAdapter
from ..hicast.style_encoder import CLIP_SOURCES, StyleEncoder, append_style_tokens, clip_vision_features
from ..hicast.style_images import folder_style_images, style_set
from ..hicast.temporal_layers import TemporalInjection, TemporalLayers
from ..hicast.temporal_smoothing import temporal_smooth
from ..hicast.temporal_training import train_temporal_layers
from ..hicast.unet_levels import encoder_levels
from ..hicast.vgg_features import load_vgg19
from .backends import missing, onnxruntime_providers
from .guards import NodeInputError, finite, model_file, new_model_path, resolve_under
from .hicast_comfy import (Hosted, autograd_view, hicast_module, load, module_patcher, patched_base, progress_bar,
                           trainable_decoder)
from .search import search_aliases

CATEGORY = "UniStyle/HiCAST"
ADAPTERS, DEPTH, POSE, LOSS_NETS, SEG = "hicast_adapters", "hicast_depth", "hicast_pose", "hicast_loss_nets", "hicast_seg"
NONE_INSTALLED = "(none installed)"
MEDIAPIPE = "mediapipe (built in)"
MEDIAPIPE_PERSON = "mediapipe person (built in)"
RANDOM_FEATURES = "random features (test only, no VGG file)"
RESUME_EXT = ".hicast_resume"  # resume state next to the output; not an extension the adapters folder lists
log = logging.getLogger("hicast")
HiCASTModule = io.Custom("HICAST_MODULE")

# registered with the extensions they list (an empty set would list every file, resume states included)
for _kind, _exts in ((ADAPTERS, {".safetensors"}), (DEPTH, set()), (POSE, {".onnx"}), (LOSS_NETS, {".safetensors"}),
                     (SEG, set())):
    if _kind not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[_kind] = ([os.path.join(folder_paths.models_dir, _kind)], set(_exts))
    elif _exts and not folder_paths.folder_names_and_paths[_kind][1]:
        folder_paths.folder_names_and_paths[_kind][1].update(_exts)


def device_images(image, name):
    return as_rgb_batch(image, name).to(comfy.model_management.get_torch_device())


def unet_levels(model):
    cfg = getattr(model.model.model_config, "unet_config", {})
    if not all(k in cfg for k in ("model_channels", "channel_mult", "num_res_blocks")):
        raise ValueError(f"model: expected an SD-family UNet (model_channels/channel_mult/num_res_blocks), "
                         f"got {type(model.model).__name__}")
    return encoder_levels(cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"])


def finite_module(module, name):
    for key, t in module.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise NodeInputError(f"{name}: weight {key} contains NaN or infinite values; the file is damaged")


def style_tokens(style_encoder, style_image, clip_vision_output, first_only=False):
    """f_s of the style image(s) by the memory-managed encoder."""
    entry = expect_kind(style_encoder, "style_encoder", "style_encoder")
    style = as_rgb_batch(finite(style_image, "style_image"), "style_image").permute(0, 3, 1, 2)
    if first_only:
        style = style[:1]
    load(entry.get("patcher"))
    with torch.no_grad():
        return entry["module"].encode(style, clip_vision_output)


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
        images = device_images(finite(image, "image"), "image")
        out = canny(images, low_threshold, high_threshold) if method == "canny" else soft_edge(images, soft_sigma)
        return io.NodeOutput(out.to(comfy.model_management.intermediate_device()))


def segmentation_choices():
    builtin = [] if missing("mediapipe") else [MEDIAPIPE_PERSON]
    return builtin + [d for root in folder_paths.get_folder_paths(SEG) for d in segmentation_model_folders(root)]


class HiCASTSegmentationMap(io.ComfyNode):
    BACKENDS = ("mediapipe", "transformers")

    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTSegmentationMap", display_name="HiCAST Segmentation Map", category=CATEGORY,
            description="Segmentation map in ADE20K colours: person/background from mediapipe's bundled selfie model, "
                        "or semantic classes from a transformers model (e.g. SegFormer ADE20K) in models/hicast_seg.",
            inputs=[io.Image.Input("image", tooltip="Image or video frames."),
                    io.Float.Input("threshold", default=0.5, min=0.01, max=0.99, step=0.01,
                                   tooltip="mediapipe: person probability above which a pixel is coloured as person."),
                    io.Combo.Input("seg_model", options=segmentation_choices() or [NONE_INSTALLED], optional=True,
                                   tooltip="mediapipe's person model, or a semantic segmentation folder (config.json + "
                                           "model.safetensors, e.g. nvidia/segformer-b0-finetuned-ade-512-512) in "
                                           "models/hicast_seg: each pixel gets its class colour (ADE20K palette)."),
                    io.Int.Input("resolution", default=512, min=64, max=2048, step=32, optional=True,
                                 tooltip="Semantic models: the square size the model sees (SegFormer ADE: 512).")],
            outputs=[io.Image.Output(display_name="segmentation_map")],
        )

    @classmethod
    def execute(cls, image, threshold, seg_model=MEDIAPIPE_PERSON, resolution=512) -> io.NodeOutput:
        images = as_rgb_batch(finite(image, "image"), "image")
        progress = progress_bar(images.shape[0])
        if seg_model == MEDIAPIPE_PERSON:
            return io.NodeOutput(segmentation_map(images, finite(threshold, "threshold"), progress))
        patcher = folder_model_patcher(SEG, seg_model, "seg_model", segmentation_choices(), load_segmentation_model,
                                       "nvidia/segformer-b0-finetuned-ade-512-512")
        load(patcher)
        return io.NodeOutput(semantic_map(patcher.model.inner, images, resolution, progress=progress)
                             .to(comfy.model_management.intermediate_device()))


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
        images = as_rgb_batch(finite(image, "image"), "image")
        progress = progress_bar(images.shape[0])
        if pose_model == MEDIAPIPE:
            return io.NodeOutput(pose_map(images, finite(min_visibility, "min_visibility"), stick_width, progress))
        session = load_onnx_pose(model_file(POSE, pose_model, "pose_model"), providers=onnxruntime_providers())
        return io.NodeOutput(onnx_pose_map(session, images, finite(heatmap_threshold, "heatmap_threshold"), stick_width,
                                           detect_resolution, progress=progress))


def depth_choices():
    found = [d for root in folder_paths.get_folder_paths(DEPTH) for d in depth_model_folders(root)]
    return found or [NONE_INSTALLED]


_FOLDER_MODELS = {}  # folder -> (config mtime, ModelPatcher): loaded once, moved by ComfyUI's memory manager


def folder_model_patcher(kind, name, input_name, choices, loader, example):
    """The memory-managed transformers model in the folder NAME of models/<kind> (confined to those folders);
    the model is patcher.model.inner."""
    roots = folder_paths.get_folder_paths(kind)
    if name not in choices or name == NONE_INSTALLED:
        raise NodeInputError(f"{input_name}: no model {name!r} in models/{kind} ({roots[0]}): expected a folder with "
                                f"config.json and model.safetensors (e.g. {example}, downloaded by you)")
    folder = next(f for f in (resolve_under(r, name, input_name) for r in roots if os.path.isdir(r)) if os.path.isdir(f))
    stamp = os.path.getmtime(os.path.join(folder, "config.json"))
    if _FOLDER_MODELS.get(folder, (None,))[0] != stamp:
        _FOLDER_MODELS[folder] = (stamp, module_patcher(Hosted(loader(folder).requires_grad_(False))))
    return _FOLDER_MODELS[folder][1]


def depth_patcher(name):
    return folder_model_patcher(DEPTH, name, "depth_model", depth_choices(), lambda f: load_depth_model(f, "cpu"),
                                "depth-anything/Depth-Anything-V2-Small-hf or Intel/dpt-hybrid-midas")


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
        patcher = depth_patcher(depth_model)
        load(patcher)
        images = as_rgb_batch(finite(image, "image"), "image")
        return io.NodeOutput(depth_map(patcher.model.inner, images, resolution, progress=progress_bar(images.shape[0]))
                             .to(comfy.model_management.intermediate_device()))


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
        return io.NodeOutput(temporal_smooth(finite(maps, "maps"), None if frames is None else finite(frames, "frames"),
                                             finite(strength, "strength"), finite(motion_threshold, "motion_threshold")))


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
        module, meta = load_module(model_file(ADAPTERS, adapter_name, "adapter_name"))
        finite_module(module, "adapter_name")
        return io.NodeOutput(hicast_module(meta["hicast_kind"], adapter_name, module, meta.get("map_type", "")))


def add_models(patched, patchers, key="hicast"):
    """Sampling loads these pack modules with the UNet (ComfyUI's memory manager), next to earlier ones."""
    previous = patched.get_additional_models_with_key(key) if hasattr(patched, "get_additional_models_with_key") else []
    patched.set_additional_models(key, list(previous) + list(patchers))


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
                                              tooltip="CLIP Vision Encode output of the style image, for encoders trained "
                                                      "with one (ViT-L/14 or ViT-H/14; the width is checked)."),
                    io.Float.Input("style_scale", default=1.0, min=0.0, max=5.0, step=0.05,
                                   tooltip="lambda in [c ; lambda * f_s]: how strongly the style image conditions the UNet.")],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, style_scale, style_encoder=None, style_image=None, clip_vision_output=None,
                **slots) -> io.NodeOutput:
        levels = unet_levels(model)
        finite(style_scale, "style_scale")
        entries, patchers = [], []
        for i in (1, 2, 3):
            adapter, maps, weight = slots.get(f"adapter_{i}"), slots.get(f"map_{i}"), finite(slots.get(f"weight_{i}", 1.0), f"weight_{i}")
            if adapter is None or weight == 0:
                continue
            expect_kind(adapter, "style_adapter", f"adapter_{i}")
            if maps is None:
                raise ValueError(f"map_{i}: adapter_{i} ({adapter['name']}) is connected but has no control map")
            entries.append((f"{adapter['name']} (adapter_{i})", adapter["module"],
                            as_rgb_batch(finite(maps, f"map_{i}"), f"map_{i}"), weight))
            patchers.append(adapter["patcher"])
        patched = model.clone()
        inject = AdapterInjection(levels, entries)
        if inject:
            patched.set_model_input_block_patch(inject)
            add_models(patched, patchers)
        if style_scale != 0 and style_encoder is not None and style_image is not None:
            tokens = style_tokens(style_encoder, style_image, clip_vision_output)
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
                                              tooltip="CLIP Vision Encode output of the style image, for encoders trained "
                                                      "with one (ViT-L/14 or ViT-H/14; the width is checked)."),
                    io.Float.Input("style_scale", default=1.0, min=0.0, max=5.0, step=0.05,
                                   tooltip="lambda multiplying the style tokens.")],
            outputs=[io.Conditioning.Output(display_name="positive"), io.Conditioning.Output(display_name="negative")],
        )

    @classmethod
    def execute(cls, style_encoder, style_image, style_scale, clip_vision_output=None) -> io.NodeOutput:
        tokens = finite(style_scale, "style_scale") * style_tokens(style_encoder, style_image, clip_vision_output,
                                                                    first_only=True)[:1]
        tokens = tokens.to(comfy.model_management.intermediate_device())
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
        entry = expect_kind(temporal_layers, "temporal_layers", "temporal_layers")
        patched = model.clone()
        patched.set_model_input_block_patch(TemporalInjection(unet_levels(model), entry["module"]))
        add_models(patched, [entry["patcher"]])
        return io.NodeOutput(patched)


def loss_net_choices():
    found = [f for f in folder_paths.get_filename_list(LOSS_NETS) if f.endswith(".safetensors")]
    return found + [RANDOM_FEATURES]


def load_loss_net(name):
    """phi for L_c / L_s: VGG-19 from models/hicast_loss_nets, or the random-feature test fixture when chosen."""
    if name == RANDOM_FEATURES:
        log.warning("HiCAST: training with random features instead of VGG-19 (loss_net %r); put torchvision's "
                    "vgg19 weights as safetensors in models/hicast_loss_nets for real training", name)
        return RandomFeatureNet()
    return load_vgg19(model_file(LOSS_NETS, name, "loss_net"))


def output_paths(output_name, overwrite, *suffixes):
    """The files a trainer writes (refused when one exists and overwrite is off) and its resume-state path."""
    first = new_model_path(ADAPTERS, output_name, "output_name", overwrite=overwrite)
    stem = first[:-len(".safetensors")]
    extra = [new_model_path(ADAPTERS, os.path.basename(stem) + s, "output_name", overwrite=overwrite) for s in suffixes]
    return [first, *extra], stem + RESUME_EXT


def context_of(conditioning):
    if not conditioning or not isinstance(conditioning[0][0], torch.Tensor):
        raise NodeInputError("conditioning: expected a CONDITIONING (e.g. from CLIP Text Encode)")
    return trainable(finite(conditioning[0][0], "conditioning")).float()


class TrainingRun:
    """What both trainers share: the MODEL's (and VAE's) autograd views and extra modules loaded together by
    ComfyUI's memory manager, on the run's device, under autograd (nodes otherwise run in inference mode)."""

    def __init__(self, model, vae=None, modules=()):
        self.base_view = autograd_view(model)
        self.vae_view = None if vae is None else autograd_view(vae.patcher)
        self.patchers = [module_patcher(m) for m in modules]
        load(self.base_view, self.vae_view, *self.patchers)
        self.device = self.base_view.load_device
        self.base = patched_base(self.base_view)
        self.decode = None if vae is None else trainable_decoder(vae, model, self.vae_view)

    def tensor(self, t):
        return trainable(t).to(self.device)


def save_outputs(files, resume_path):
    for path, module, kind, map_type in files:
        save_module(path, module, kind, map_type=map_type)
    if os.path.exists(resume_path):
        os.unlink(resume_path)


class HiCASTTrainAdapter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTTrainAdapter", display_name="HiCAST Train Adapter (stage 2)", category=CATEGORY,
            is_output_node=True,
            description="Train one style adapter and the style encoder with the model frozen on (content, style) pairs "
                        "(content, style and adversarial losses on VGG-19 features); resumable; writes both files to "
                        "models/hicast_adapters and never overwrites one unless told to.",
            inputs=[io.Model.Input("model", tooltip="The frozen SD-family model (its LoRAs and patches apply)."),
                    io.Vae.Input("vae", tooltip="Its VAE (encodes content images, decodes predictions for the losses)."),
                    io.Image.Input("content_images", tooltip="Content images (a batch of one size)."),
                    io.Image.Input("maps", tooltip="Their control maps, same count and size."),
                    io.Image.Input("style_images", tooltip="The style set: every image of the batch is a style; each "
                                                           "training pair draws one."),
                    io.Conditioning.Input("conditioning", tooltip="Base cross-attention context (e.g. an empty prompt)."),
                    io.String.Input("output_name", default="hicast_edge_adapter.safetensors",
                                    tooltip="Adapter file name in models/hicast_adapters; the style encoder goes next to "
                                            "it with _style_encoder."),
                    io.Boolean.Input("overwrite", default=False,
                                     tooltip="Replace existing files of that name (off: an existing file is refused)."),
                    io.Combo.Input("map_type", options=["edge", "segmentation", "depth", "pose"],
                                   tooltip="Recorded in the file: which control map the adapter reads."),
                    io.Combo.Input("loss_net", options=loss_net_choices(),
                                   tooltip="VGG-19 for the content/style losses: torchvision's vgg19 state_dict as "
                                           "safetensors in models/hicast_loss_nets. The random-feature option is a "
                                           "test fixture, not for real training."),
                    io.Int.Input("steps", default=200, min=1, max=100000, tooltip="Total optimisation steps."),
                    io.Int.Input("batch_size", default=1, min=1, max=64, tooltip="(content, style) pairs per step."),
                    io.Float.Input("learning_rate", default=1e-4, min=1e-6, max=1e-1, step=1e-5, tooltip="AdamW learning rate."),
                    io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1, tooltip="Seed of every step's pairs, noise and timestep."),
                    io.String.Input("style_folder", default="", optional=True,
                                    tooltip="Optional folder under ComfyUI's input/ whose images join the style set."),
                    io.ClipVisionOutput.Input("clip_vision_output", optional=True,
                                              tooltip="CLIP Vision Encode output of style_images (one per style image): the "
                                                      "encoder then also reads CLIP features (width from this input)."),
                    io.Combo.Input("clip_source", options=list(CLIP_SOURCES), default="image_embeds", optional=True,
                                   tooltip="Which CLIP-vision output the encoder reads: image_embeds (ViT-L 768 / ViT-H "
                                           "1024) or the mean penultimate hidden state (ViT-L 1024 / ViT-H 1280).")],
            outputs=[HiCASTModule.Output(display_name="adapter"), HiCASTModule.Output(display_name="style_encoder"),
                     io.Float.Output(display_name="final_loss")],
        )

    @classmethod
    def execute(cls, model, vae, content_images, maps, style_images, conditioning, output_name, overwrite, map_type,
                loss_net, steps, batch_size, learning_rate, seed, style_folder="", clip_vision_output=None,
                clip_source="image_embeds") -> io.NodeOutput:
        (path, enc_path), resume = output_paths(output_name, overwrite, "_style_encoder.safetensors")
        levels = unet_levels(model)
        content = as_rgb_batch(finite(content_images, "content_images"), "content_images")
        maps = as_rgb_batch(finite(maps, "maps"), "maps")
        if maps.shape[:3] != content.shape[:3]:
            raise NodeInputError(f"maps: expected {tuple(content.shape[:3])} (frames, height, width of content_images), "
                                 f"got {tuple(maps.shape[:3])}")
        folder = (style_folder or "").strip()
        extra = folder_style_images(resolve_under(folder_paths.get_input_directory(), folder, "style_folder")) if folder else []
        styles = style_set(tuple(content.shape[1:3]), [finite(style_images, "style_images")], extra)
        clip = None
        if clip_vision_output is not None:
            clip = clip_vision_features(clip_vision_output, clip_source)
            if clip.shape[0] != styles.shape[0]:
                raise NodeInputError(f"clip_vision_output: expected one output per style ({styles.shape[0]}: style_images "
                                     f"and style_folder), got {clip.shape[0]}; encode the same images")
        context = context_of(conditioning)
        latent = model.model.process_latent_in(vae.encode(content)).float()
        job = {"trainer": "style_adapter", "seed": seed, "learning_rate": learning_rate, "steps": steps,
               "batch_size": batch_size, "map_type": map_type, "loss_net": loss_net, "levels": [lv.channels for lv in levels],
               "clip_source": clip_source if clip is not None else None,
               "data": fingerprint(content, maps, styles, clip, context)}
        with torch.inference_mode(False), torch.enable_grad():
            feature_net = load_loss_net(loss_net)
            adapter = StyleAdapter([lv.channels for lv in levels])
            encoder = StyleEncoder(context_dim=context.shape[-1], clip_dim=0 if clip is None else clip.shape[-1],
                                   clip_source=clip_source)
            discriminator = PatchDiscriminator()
            run = TrainingRun(model, vae, [adapter, encoder, feature_net, discriminator])
            t = run.tensor
            pairs = PairSampler(t(latent), t(content.permute(0, 3, 1, 2)), {map_type: t(maps)}, t(styles), batch_size,
                                None if clip is None else t(clip))
            history = train_adapters(run.base, levels, {map_type: adapter}, encoder, pairs, run.decode, t(context), steps,
                                     feature_net=feature_net, discriminator=discriminator, lr=learning_rate, seed=seed, abar=run.base.abar,
                                     checkpoint_path=resume, save_every=25, progress=progress_bar(steps), job=job)
        save_outputs([(path, adapter, "style_adapter", map_type), (enc_path, encoder, "style_encoder", "style")], resume)
        return io.NodeOutput(hicast_module("style_adapter", os.path.basename(path), adapter, map_type),
                             hicast_module("style_encoder", os.path.basename(enc_path), encoder, "style"),
                             history[-1]["loss"])


class HiCASTTrainTemporalLayers(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="HiCASTTrainTemporalLayers", display_name="HiCAST Train Temporal Layers (stage 3)",
            category=CATEGORY, is_output_node=True,
            description="Train zero-initialised temporal layers on a clip with the harmonious consistency loss L_h; "
                        "resumable; writes the file to models/hicast_adapters and never overwrites one unless told to.",
            inputs=[io.Model.Input("model", tooltip="The frozen (optionally adapter-patched) SD-family model."),
                    io.Vae.Input("vae", tooltip="Its VAE, to encode the clip."),
                    io.Image.Input("video", tooltip="Training clip frames (at least 2)."),
                    io.Conditioning.Input("conditioning", tooltip="Cross-attention context used while training."),
                    io.String.Input("output_name", default="hicast_temporal_layers.safetensors",
                                    tooltip="Output file name in models/hicast_adapters."),
                    io.Boolean.Input("overwrite", default=False,
                                     tooltip="Replace an existing file of that name (off: an existing file is refused)."),
                    io.Int.Input("clip_frames", default=8, min=2, max=64, tooltip="Frames per training clip (a random window)."),
                    io.Int.Input("steps", default=200, min=1, max=100000, tooltip="Total optimisation steps."),
                    io.Float.Input("learning_rate", default=1e-4, min=1e-6, max=1e-1, step=1e-5, tooltip="AdamW learning rate."),
                    io.Float.Input("lambda_local", default=0.1, min=0.0, max=10.0, step=0.01,
                                   tooltip="Weight of the local patch-contrastive term of L_h."),
                    io.Int.Input("seed", default=0, min=0, max=2 ** 31 - 1, tooltip="Seed of windows, noise and timesteps.")],
            outputs=[HiCASTModule.Output(display_name="temporal_layers"), io.Float.Output(display_name="final_loss")],
        )

    @classmethod
    def execute(cls, model, vae, video, conditioning, output_name, overwrite, clip_frames, steps, learning_rate,
                lambda_local, seed) -> io.NodeOutput:
        (path,), resume = output_paths(output_name, overwrite)
        frames = as_rgb_batch(finite(video, "video"), "video")
        if frames.shape[0] < 2:
            raise NodeInputError(f"video: expected at least 2 frames, got {frames.shape[0]}")
        levels = unet_levels(model)
        context = context_of(conditioning)
        latents = model.model.process_latent_in(vae.encode(frames)).float()
        n = min(clip_frames, latents.shape[0])
        job = {"trainer": "temporal_layers", "seed": seed, "learning_rate": learning_rate, "steps": steps,
               "clip_frames": n, "lambda_local": finite(lambda_local, "lambda_local"),
               "levels": [lv.channels for lv in levels], "data": fingerprint(frames, context)}
        with torch.inference_mode(False), torch.enable_grad():
            layers = TemporalLayers([lv.channels for lv in levels])
            run = TrainingRun(model, None, [layers])
            latents = run.tensor(latents)

            def clips(step, g):
                start = int(torch.randint(0, latents.shape[0] - n + 1, (1,), generator=g))
                return latents[start:start + n]

            history = train_temporal_layers(run.base, levels, layers, clips, run.tensor(context), steps,
                                            lambda_local=lambda_local, lr=learning_rate, seed=seed, abar=run.base.abar,
                                            checkpoint_path=resume, save_every=25, progress=progress_bar(steps), job=job)
        save_outputs([(path, layers, "temporal_layers", "video")], resume)
        return io.NodeOutput(hicast_module("temporal_layers", os.path.basename(path), layers, "video"),
                             history[-1]["loss_h"])


NODES = [HiCASTEdgeMap, HiCASTSegmentationMap, HiCASTDepthMap, HiCASTPoseMap, HiCASTTemporalSmooth,
         HiCASTAdapterLoader, HiCASTApplyStyleAdapters, HiCASTStyleConditioning, HiCASTApplyTemporalLayers,
         HiCASTTrainAdapter, HiCASTTrainTemporalLayers]
