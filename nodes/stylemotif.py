"""StyleMotif nodes: load a model, turn motion / text / CLIP embeddings into style vectors, blend them,
stylize (CLIP text + style, or content motion + style), preview as a skeleton IMAGE batch, save/load
HumanML3D .npy and BVH (input/ and output/ only), and train a model on procedural motion. Math lives in stylemotif/.

Types: STYLEMOTIF_MODEL (a comfy.model_patcher.ModelPatcher around stylemotif.model.StyleMotif, loaded
with comfy.model_management.load_models_gpu for each run), STYLEMOTIF_MOTION ({"features": [F, 263]
raw HumanML3D features, "fps": 20}), STYLEMOTIF_STYLE ({"vector": [D], "source": str}).
"""
import dataclasses
import itertools
import os
import shutil

import numpy as np
import torch
from PIL import Image

import comfy.model_management
import comfy.model_patcher
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..stylemotif.bvh import load_bvh, save_bvh
from ..stylemotif.denoiser import FUSE_AFTER
from ..stylemotif.humanml3d import check_features, features_from_joints, recover_from_ric
from ..stylemotif.model import StyleMotif
from ..stylemotif.pipeline import DEFAULT_STEPS, MLD_LR, TOY, finetune_style, style_set, train_procedural
from ..stylemotif.render import render_skeleton
from ..stylemotif.sampling import GUIDANCE, STEPS
from ..stylemotif.skeleton import FPS, NUM_JOINTS
from ..stylemotif.style_bank import blend_styles
from ..stylemotif.text_embedding import clip_text_features
from ..stylemotif.training import RESUME_EXT
from . import guards
from .search import search_aliases

FOLDER = "stylemotif"
folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))
folder_paths.folder_names_and_paths[FOLDER][1].add(".safetensors")
MOTION_EXTENSIONS = (".npy", ".bvh")
RENDER_BUDGET = 2 * 2 ** 30  # bytes of float32 frames a render may allocate

Model = io.Custom("STYLEMOTIF_MODEL")  # a comfy.model_patcher.ModelPatcher around stylemotif.model.StyleMotif
Motion = io.Custom("STYLEMOTIF_MOTION")
Style = io.Custom("STYLEMOTIF_STYLE")
CATEGORY = "UniStyle/StyleMotif"
# how the core's messages start -> the Stylize input they are about
CORE_NAMES = (("text", "positive"), ("negative", "negative"), ("style", "style"), ("block m", "block_m"),
              ("frames", "frames"), ("steps", "steps"), ("strength", "strength"))


def _motion(features):
    return {"features": check_features(features).detach().float().cpu().reshape(-1, 263), "fps": FPS}


def _progress(total):
    """A core progress callback: ComfyUI's bar, and the interrupt check (raises when the user cancels)."""
    bar = comfy.utils.ProgressBar(total)

    def update(done, n):
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(done, n)
    return update


def _patcher(model):
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def _loaded(patcher):
    """The StyleMotif module, loaded by ComfyUI's memory manager for this run."""
    comfy.model_management.load_models_gpu([patcher])
    return patcher.model


def _text(conditioning, input_name):
    """MLD's text feature [1, 1, C] from a CLIPTextEncode CONDITIONING: CLIP's projected pooled output."""
    if not isinstance(conditioning, list) or not conditioning or len(conditioning[0]) < 2:
        raise guards.NodeInputError(f"{input_name}: expected a CONDITIONING from CLIPTextEncode")
    pooled = conditioning[0][1].get("pooled_output")
    if pooled is None:
        raise guards.NodeInputError(f"{input_name}: this CONDITIONING has no pooled output (encode with a CLIP-L text "
                                    "encoder loaded by CLIPLoader / DualCLIPLoader)")
    return guards.finite(pooled.reshape(pooled.shape[0], -1)[:1].float().cpu()[:, None], input_name)


def _embedding(conditioning=None, clip_vision_output=None):
    """One vector of the shared CLIP space: image_embeds of a CLIP-vision output, or a text pooled output."""
    if clip_vision_output is not None:
        emb = getattr(clip_vision_output, "image_embeds", None)
        if emb is None and hasattr(clip_vision_output, "get"):
            emb = clip_vision_output.get("image_embeds")
        if emb is None:
            raise guards.NodeInputError("clip_vision_output: has no image_embeds (use a CLIP-vision model with a projection)")
        return guards.finite(emb.reshape(emb.shape[0], -1)[0].float().cpu(), "clip_vision_output")
    if conditioning is not None:
        return _text(conditioning, "conditioning").reshape(-1)
    raise guards.NodeInputError("conditioning: connect a CLIP text encoding or a clip_vision_output")


class StyleMotifModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifModelLoader", display_name="StyleMotif Model Loader", category=CATEGORY,
            description="Load a StyleMotif model (MLD VAE + denoiser, style encoder, alignment head, style bank): a file "
                        "from `python -m stylemotif.import_mld` or the StyleMotif Train node.",
            inputs=[io.Combo.Input("model_name", options=folder_paths.get_filename_list(FOLDER),
                                   tooltip="A .safetensors file from models/stylemotif.")],
            outputs=[Model.Output(display_name="model")])

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        path = guards.model_file(FOLDER, model_name, "model_name")
        try:
            model = StyleMotif.load(path)
        except ValueError as e:
            raise guards.NodeInputError(f"model_name: {e}") from None
        return io.NodeOutput(_patcher(model))


class StyleMotifEncodeStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifEncodeStyle", display_name="StyleMotif Motion Style from Clip",
            **search_aliases("motion style"), category=CATEGORY,
            inputs=[Model.Input("model", tooltip="The StyleMotif model whose style encoder is used."),
                    Motion.Input("motion", tooltip="A style reference motion (e.g. an old person walking).")],
            outputs=[Style.Output(display_name="style")])

    @classmethod
    def execute(cls, model, motion) -> io.NodeOutput:
        vec = _loaded(model).encode_style(motion["features"], "motion")[0].cpu()
        return io.NodeOutput({"vector": vec, "source": "motion"})


class StyleMotifStyleFromEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifStyleFromEmbedding", display_name="StyleMotif Motion Style from Text or Image",
            **search_aliases("motion style"), category=CATEGORY,
            description="Project a CLIP ViT-L/14 embedding (text: CLIPTextEncode's pooled output; image: CLIP Vision "
                        "Encode's image_embeds) into the style space and retrieve/blend the nearest bank styles.",
            inputs=[Model.Input("model", tooltip="The StyleMotif model (its alignment head and style bank are used)."),
                    io.Int.Input("top_k", default=1, min=1, max=100, tooltip="How many nearest bank styles to blend."),
                    io.Float.Input("temperature", default=0.1, min=0.001, max=10.0, step=0.01,
                                   tooltip="Softmax temperature over cosine similarities when blending the top k."),
                    io.Conditioning.Input("conditioning", optional=True, tooltip="A style description encoded by "
                                          "CLIPTextEncode with the CLIP-L model the alignment head was trained on."),
                    io.ClipVisionOutput.Input("clip_vision_output", optional=True, tooltip="A style image encoded by "
                                              "CLIP Vision Encode (ViT-L/14, projected image_embeds); wins over conditioning.")],
            outputs=[Style.Output(display_name="style"), io.String.Output(display_name="matches")])

    @classmethod
    def execute(cls, model, top_k, temperature, conditioning=None, clip_vision_output=None) -> io.NodeOutput:
        guards.finite(temperature, "temperature")
        emb = _embedding(conditioning, clip_vision_output)
        try:
            vec, weights = _loaded(model).style_from_embedding(emb, top_k, temperature)
        except ValueError as e:
            raise guards.NodeInputError(f"{'clip_vision_output' if clip_vision_output is not None else 'conditioning'}: {e}") from None
        matches = ", ".join(f"{k}: {v:.2f}" for k, v in weights.items())
        return io.NodeOutput({"vector": vec, "source": matches}, matches)


class StyleMotifBlendStyles(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifBlendStyles", display_name="StyleMotif Blend Motion Styles",
            **search_aliases("motion style", "style interpolation"), category=CATEGORY,
            description="Style interpolation: the weighted average of up to three style vectors.",
            inputs=[Style.Input("style_a", tooltip="First style."),
                    io.Float.Input("weight_a", default=0.5, min=0.0, max=10.0, step=0.05, tooltip="Weight of style_a."),
                    Style.Input("style_b", tooltip="Second style."),
                    io.Float.Input("weight_b", default=0.5, min=0.0, max=10.0, step=0.05, tooltip="Weight of style_b."),
                    Style.Input("style_c", optional=True, tooltip="Optional third style."),
                    io.Float.Input("weight_c", default=0.0, min=0.0, max=10.0, step=0.05, optional=True,
                                   tooltip="Weight of style_c.")],
            outputs=[Style.Output(display_name="style")])

    @classmethod
    def execute(cls, style_a, weight_a, style_b, weight_b, style_c=None, weight_c=0.0) -> io.NodeOutput:
        styles, weights = [style_a["vector"], style_b["vector"]], [weight_a, weight_b]
        if style_c is not None:
            styles.append(style_c["vector"])
            weights.append(weight_c)
        for name, w in zip(("weight_a", "weight_b", "weight_c"), weights):
            guards.finite(w, name)
        vec = blend_styles(torch.stack(styles), weights)
        return io.NodeOutput({"vector": vec, "source": f"blend {weights}"})


class StyleMotifStylize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifStylize", display_name="StyleMotif Motion Style Transfer",
            **search_aliases("motion style", "style transfer", "stylize motion"), category=CATEGORY,
            description="Text + a style -> stylized motion (MLD's DDIM with classifier-free guidance, cross normalization "
                        "after block m; gamma 0 = plain MLD). With content_motion: motion style transfer, the content motion "
                        "re-noised to `strength` and denoised with the same text guidance.",
            inputs=[Model.Input("model", tooltip="The StyleMotif model."),
                    Style.Input("style", tooltip="Style vector from Motion Style from Clip, Motion Style from Text or Image, or Blend Motion Styles."),
                    io.Conditioning.Input("positive", tooltip="The motion's description, CLIPTextEncode with CLIP-L "
                                          "(MLD reads its pooled, projected output). In transfer: the content motion's description."),
                    io.Conditioning.Input("negative", tooltip="CLIPTextEncode of an EMPTY prompt with the same CLIP: MLD's "
                                          "unconditional branch for classifier-free guidance."),
                    io.Float.Input("gamma", default=0.6, min=0.0, max=5.0, step=0.05,
                                   tooltip="Cross-norm scale γ (paper: 0.6); 0 disables the style."),
                    io.Int.Input("block_m", default=FUSE_AFTER, min=0, max=62,
                                 tooltip="Denoiser block after which the style is fused, once, in execution order of "
                                         "MLD's skip transformer (0-3 input blocks, 4 middle, 5-8 output blocks for 9 layers)."),
                    io.Int.Input("steps", default=STEPS, min=1, max=1000, tooltip="DDIM steps (MLD: 50)."),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                                 tooltip="Seed of the initial noise."),
                    io.Float.Input("guidance", default=GUIDANCE, min=0.0, max=20.0, step=0.1,
                                   tooltip="Classifier-free text guidance scale (MLD: 7.5; 1 = text without guidance)."),
                    io.Int.Input("frames", default=60, min=2, max=196,
                                 tooltip="Length of a generated motion at 20 fps (HumanML3D: up to 196); transfer keeps "
                                         "the content motion's length."),
                    io.Float.Input("strength", default=0.7, min=0.01, max=1.0, step=0.01,
                                   tooltip="Transfer only: how much of the content motion is re-noised (1 = generate anew)."),
                    Motion.Input("content_motion", optional=True,
                                 tooltip="Connect for motion style transfer (keeps this motion's content and length).")],
            outputs=[Motion.Output(display_name="motion")])

    @classmethod
    def execute(cls, model, style, positive, negative, gamma, block_m, steps, seed, guidance, frames, strength,
                content_motion=None) -> io.NodeOutput:
        for name, v in (("gamma", gamma), ("guidance", guidance), ("strength", strength)):
            guards.finite(v, name)
        text, null = _text(positive, "positive"), _text(negative, "negative")
        m = _loaded(model)
        common = dict(style=guards.finite(style["vector"], "style"), gamma=gamma, fuse_after=block_m, steps=steps, seed=seed,
                      guidance=guidance, progress=_progress(steps))
        try:
            if content_motion is not None:
                out = m.transfer(content_motion["features"], text=text, null_text=null, strength=strength, **common)
            else:
                out = m.generate(text, null, frames=frames, **common)
        except ValueError as e:  # the core names what it refused; say which node input that is
            msg = str(e)
            name = next((inp for prefix, inp in CORE_NAMES if msg.startswith(prefix)), "content_motion")
            raise guards.NodeInputError(msg if msg.startswith(name) else f"{name}: {msg}") from None
        return io.NodeOutput(_motion(out[0]))


class StyleMotifRenderSkeleton(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifRenderSkeleton", display_name="StyleMotif Render Skeleton", category=CATEGORY,
            inputs=[Motion.Input("motion", tooltip="The motion to draw."),
                    io.Int.Input("width", default=256, min=16, max=4096, step=8, tooltip="Image width in pixels."),
                    io.Int.Input("height", default=256, min=16, max=4096, step=8, tooltip="Image height in pixels."),
                    io.Float.Input("azimuth", default=30.0, min=-360.0, max=360.0, step=5.0,
                                   tooltip="Camera angle around the vertical axis, degrees (0 = front)."),
                    io.Float.Input("elevation", default=15.0, min=-89.0, max=89.0, step=5.0,
                                   tooltip="Camera angle above the floor, degrees."),
                    io.Float.Input("zoom", default=1.0, min=0.1, max=10.0, step=0.1, tooltip="1 frames the motion with a margin."),
                    io.Boolean.Input("follow_root", default=True,
                                     tooltip="Keep the body centred in every frame (off: frame the whole trajectory).")],
            outputs=[io.Image.Output(display_name="images")])

    @classmethod
    def execute(cls, motion, width, height, azimuth, elevation, zoom, follow_root) -> io.NodeOutput:
        return io.NodeOutput(torch.from_numpy(_render(motion, width, height, azimuth, elevation, zoom, follow_root)))


def _render(motion, width, height, azimuth=30.0, elevation=15.0, zoom=1.0, follow_root=True):
    for name, v in (("azimuth", azimuth), ("elevation", elevation), ("zoom", zoom)):
        guards.finite(v, name)
    joints = recover_from_ric(motion["features"].double())
    size = joints.shape[0] * width * height * 3 * 4
    if size > RENDER_BUDGET:
        raise guards.NodeInputError(f"width/height: {joints.shape[0]} frames at {width}x{height} need {size / 2 ** 30:.1f} GiB "
                                    f"(limit {RENDER_BUDGET / 2 ** 30:.0f} GiB); render smaller")
    return render_skeleton(joints, width, height, azimuth, elevation, zoom, follow_root, progress=_progress(joints.shape[0]))


class StyleMotifSaveMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifSaveMotion", display_name="StyleMotif Save Motion", category=CATEGORY, is_output_node=True,
            description="Save a motion under ComfyUI's output folder and show it as an animated skeleton preview.",
            inputs=[Motion.Input("motion", tooltip="The motion to save."),
                    io.String.Input("filename_prefix", default="stylemotif/motion",
                                    tooltip="Prefix under the output folder (relative; no '..')."),
                    io.Combo.Input("format", options=["npy", "bvh", "npy+bvh"], default="npy+bvh",
                                   tooltip="npy: HumanML3D [F, 263] features; bvh: skeleton animation (centimetres).")],
            outputs=[])

    @classmethod
    def execute(cls, motion, filename_prefix, format) -> io.NodeOutput:
        out_dir = folder_paths.get_output_directory()
        guards.resolve_under(out_dir, filename_prefix, "filename_prefix")
        full_dir, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir)
        os.makedirs(full_dir, exist_ok=True)
        saved = []
        if "npy" in format:
            fname = f"{name}_{counter:05}_.npy"
            tmp = os.path.join(full_dir, fname + ".tmp.npy")
            np.save(tmp, motion["features"].numpy())
            os.replace(tmp, os.path.join(full_dir, fname))
            saved.append(fname)
        if "bvh" in format:
            fname = f"{name}_{counter:05}_.bvh"
            save_bvh(os.path.join(full_dir, fname), recover_from_ric(motion["features"].double()))
            saved.append(fname)
        preview = f"{name}_{counter:05}_.webp"
        frames = [Image.fromarray((f * 255).round().astype(np.uint8)) for f in _render(motion, 384, 384)]
        frames[0].save(os.path.join(full_dir, preview), save_all=True, append_images=frames[1:],
                       duration=int(1000 / motion.get("fps", FPS)), loop=0, quality=85)
        files = [{"filename": f, "subfolder": subfolder, "type": "output"} for f in saved]
        return io.NodeOutput(ui={"images": [{"filename": preview, "subfolder": subfolder, "type": "output"}],
                                 "animated": (True,), "motions": files})


def motion_files():
    """.npy / .bvh files under ComfyUI's input folder, as relative names (sub-folders included)."""
    root = folder_paths.get_input_directory()
    files, _ = folder_paths.recursive_search(root)
    return sorted(f.replace(os.sep, "/") for f in folder_paths.filter_files_extensions(files, MOTION_EXTENSIONS))


class StyleMotifLoadMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifLoadMotion", display_name="StyleMotif Load Motion", category=CATEGORY,
            inputs=[io.Combo.Input("file", options=motion_files(), upload=io.UploadType.model,
                                   tooltip="A .npy ([F, 263] HumanML3D features or [F, 22, 3] joints) or .bvh with the 22 "
                                           "HumanML3D joint names, from ComfyUI's input folder (upload with the button).")],
            outputs=[Motion.Output(display_name="motion")])

    @classmethod
    def fingerprint_inputs(cls, file):
        path = guards.input_file(file, "file")
        return f"{path}:{os.path.getmtime(path)}:{os.path.getsize(path)}"

    @classmethod
    def execute(cls, file) -> io.NodeOutput:
        if not str(file).lower().endswith(MOTION_EXTENSIONS):
            raise guards.NodeInputError(f"file: expected a .npy or .bvh file, got {file!r}")
        path = guards.input_file(file, "file")
        try:
            if path.lower().endswith(".bvh"):
                joints, _ = load_bvh(path)
                return io.NodeOutput(_motion(features_from_joints(joints)))
            arr = np.load(path, allow_pickle=False)
            if arr.ndim == 3 and arr.shape[1:] == (NUM_JOINTS, 3):
                return io.NodeOutput(_motion(features_from_joints(arr)))
            return io.NodeOutput(_motion(check_features(arr, f"file: {file!r}")))
        except (ValueError, OSError) as e:
            msg = str(e)
            raise guards.NodeInputError(msg if msg.startswith("file:") else f"file: {file!r}: {msg}") from None


class StyleMotifTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifTrain", display_name="StyleMotif Train (procedural)", category=CATEGORY, is_output_node=True,
            description="Train a small StyleMotif model (a small config of the MLD classes) on procedural motion and save it "
                        "to models/stylemotif. Interrupt and queue again to resume: resume states are kept in "
                        f"models/stylemotif/<name>.partial/*{RESUME_EXT} (not listed as models) until the model is saved, "
                        "and a run with other settings is refused while they exist.",
            inputs=[io.String.Input("name", default="stylemotif_procedural", tooltip="Output model name (no extension)."),
                    io.Boolean.Input("overwrite", default=False, tooltip="Replace an existing model of this name."),
                    io.Int.Input("clips", default=500, min=20, max=100000, tooltip="Number of procedural training clips."),
                    io.Int.Input("vae_steps", default=DEFAULT_STEPS["vae"], min=1, max=10 ** 6, tooltip="MLD VAE steps."),
                    io.Int.Input("denoiser_steps", default=DEFAULT_STEPS["denoiser"], min=1, max=10 ** 6, tooltip="Latent denoiser steps."),
                    io.Int.Input("stylization_steps", default=DEFAULT_STEPS["stylization"], min=1, max=10 ** 6,
                                 tooltip="Style encoder steps with the MLD frozen."),
                    io.Int.Input("alignment_steps", default=DEFAULT_STEPS["alignment"], min=1, max=10 ** 6,
                                 tooltip="Alignment head (contrastive) steps."),
                    io.Int.Input("latent_dim", default=TOY.latent_dim, min=16, max=1024, step=16, tooltip="Latent / denoiser width D."),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, tooltip="Seed for data and initialisation."),
                    io.Clip.Input("clip", optional=True, tooltip="CLIP-L (CLIPLoader): the text space the model learns, so "
                                  "CLIPTextEncode prompts drive it. Without it the model learns a built-in hash text space "
                                  "of width 768 (prompts then only fit in width).")],
            outputs=[Model.Output(display_name="model")])

    @classmethod
    def execute(cls, name, overwrite, clips, vae_steps, denoiser_steps, stylization_steps, alignment_steps, latent_dim,
                seed, clip=None) -> io.NodeOutput:
        steps = {"vae": vae_steps, "denoiser": denoiser_steps, "stylization": stylization_steps, "alignment": alignment_steps}
        config = dataclasses.replace(TOY, latent_dim=latent_dim)
        embed = None if clip is None else (lambda texts: clip_text_features(clip, texts))
        return _train_to_file(name, overwrite, steps, lambda partial, progress: train_procedural(
            clips, config, steps, seed, partial, progress=progress, embed=embed)[0])


class StyleMotifFineTuneStyle(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifFineTuneStyle", display_name="StyleMotif Train Motion Style (fine-tune)",
            **search_aliases("motion style", "train style"), category=CATEGORY, is_output_node=True,
            description="StyleMotif's style branch on a base model (e.g. MLD imported with `python -m stylemotif.import_mld`): "
                        "the style encoder (VAE fine-tune on style motion, then stylization through the frozen denoiser) and "
                        "the CLIP alignment head + style bank, on a 100STYLE-layout folder or the procedural set. The base "
                        "stays frozen. Interrupt and queue again to resume (same settings).",
            inputs=[io.Combo.Input("base_model", options=folder_paths.get_filename_list(FOLDER),
                                   tooltip="The base StyleMotif/MLD model from models/stylemotif."),
                    io.Clip.Input("clip", tooltip="The CLIP-L text encoder of the base's text space (CLIPLoader, "
                                  "clip_l.safetensors for MLD): captions and style descriptions are encoded with it."),
                    io.String.Input("dataset", default="procedural",
                                    tooltip="'procedural', or a folder under ComfyUI's input/ in 100STYLE layout "
                                            "(new_joint_vecs/, texts/, train.txt, Style_name_dict.txt)."),
                    io.String.Input("name", default="stylemotif_finetuned", tooltip="Output model name (no extension)."),
                    io.Boolean.Input("overwrite", default=False, tooltip="Replace an existing model of this name."),
                    io.Int.Input("style_pretrain_steps", default=DEFAULT_STEPS["style_pretrain"], min=0, max=10 ** 6,
                                 tooltip="VAE fine-tune on style motion before stylization (0: start from the base's encoder)."),
                    io.Int.Input("stylization_steps", default=DEFAULT_STEPS["stylization"], min=1, max=10 ** 6,
                                 tooltip="Style encoder steps through the frozen denoiser (AdamW 1e-5, the paper's)."),
                    io.Int.Input("alignment_steps", default=DEFAULT_STEPS["alignment"], min=1, max=10 ** 6,
                                 tooltip="Alignment head (contrastive) steps."),
                    io.Int.Input("frames", default=60, min=8, max=196, tooltip="Window length of the training clips (20 fps)."),
                    io.Int.Input("clips", default=500, min=20, max=100000, tooltip="Procedural set only: number of clips."),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, tooltip="Seed for sampling and initialisation.")],
            outputs=[Model.Output(display_name="model")])

    @classmethod
    def execute(cls, base_model, clip, dataset, name, overwrite, style_pretrain_steps, stylization_steps, alignment_steps,
                frames, clips, seed) -> io.NodeOutput:
        try:
            with torch.inference_mode(False):  # its weights get trained (ComfyUI runs nodes under inference mode)
                base = StyleMotif.load(guards.model_file(FOLDER, base_model, "base_model"))
        except ValueError as e:
            raise guards.NodeInputError(str(e) if str(e).startswith("base_model") else f"base_model: {e}") from None
        source = dataset.strip()
        if source != "procedural":
            source = guards.resolve_under(folder_paths.get_input_directory(), source, "dataset")
            if not os.path.isdir(source):
                raise guards.NodeInputError(f"dataset: no folder {dataset!r} in ComfyUI's input folder")
        probe = clip_text_features(clip, [""])
        if probe.shape[-1] != base.config.text_dim:
            raise guards.NodeInputError(f"clip: encodes width {probe.shape[-1]}, the base model reads text of width "
                                        f"{base.config.text_dim}")
        try:
            data, texts = style_set(source, frames, clips, seed)
        except (ValueError, OSError) as e:
            raise guards.NodeInputError(f"dataset: {e}") from None
        steps = {"style_pretrain": style_pretrain_steps, "stylization": stylization_steps, "alignment": alignment_steps}
        return _train_to_file(name, overwrite, steps, lambda partial, progress: finetune_style(
            base, data, texts, lambda t: clip_text_features(clip, t), steps, MLD_LR, seed, partial, progress))


def _train_to_file(name, overwrite, steps, train):
    """Run train(resume_dir, progress(stage, done, n)) -> model under ComfyUI's progress bar and interrupt
    check, save it as models/stylemotif/<name>.safetensors (an existing file only with overwrite) and drop
    the resume states (<name>.partial/*.resume, which the model list never shows)."""
    path = guards.new_model_path(FOLDER, name, "name", overwrite=overwrite)
    partial = path[:-len(".safetensors")] + ".partial"
    total = max(1, sum(steps.values()))
    offsets = dict(zip(steps, itertools.accumulate([0, *steps.values()])))
    bar = comfy.utils.ProgressBar(total)

    def progress(stage, done, n):
        comfy.model_management.throw_exception_if_processing_interrupted()
        bar.update_absolute(offsets[stage] + done, total)
    try:
        with torch.inference_mode(False), torch.enable_grad():  # ComfyUI executes nodes under inference mode
            model = train(partial, progress)
    except ValueError as e:
        raise guards.NodeInputError(f"name: {e}") from None
    model.save(path)
    shutil.rmtree(partial, ignore_errors=True)  # the job is done; its resume states are not needed
    return io.NodeOutput(_patcher(model))


NODES = [StyleMotifModelLoader, StyleMotifEncodeStyle, StyleMotifStyleFromEmbedding, StyleMotifBlendStyles, StyleMotifStylize,
         StyleMotifRenderSkeleton, StyleMotifSaveMotion, StyleMotifLoadMotion, StyleMotifTrain, StyleMotifFineTuneStyle]
