"""StyleMotif nodes: load a model, turn motion / text / CLIP embeddings into style vectors, blend them,
stylize (text + style motion, or content motion + style motion), preview as a skeleton IMAGE batch,
save/load HumanML3D .npy and BVH, and train a model on procedural motion. Math lives in stylemotif/.

Types: STYLEMOTIF_MODEL (stylemotif.model.StyleMotif), STYLEMOTIF_MOTION ({"features": [F, 263]
raw HumanML3D features, "fps": 20}), STYLEMOTIF_STYLE ({"vector": [D], "source": str}).
"""
import os

import numpy as np
import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..stylemotif.bvh import load_bvh, save_bvh
from ..stylemotif.humanml3d import check_features, features_from_joints, recover_from_ric
from ..stylemotif.model import StyleMotif, StyleMotifConfig
from ..stylemotif.pipeline import DEFAULT_STEPS, train_procedural
from ..stylemotif.render import render_skeleton
from ..stylemotif.skeleton import FPS, NUM_JOINTS
from ..stylemotif.style_bank import blend_styles
from .search import search_aliases

FOLDER = "stylemotif"
folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))
folder_paths.folder_names_and_paths[FOLDER][1].add(".safetensors")

Model = io.Custom("STYLEMOTIF_MODEL")
Motion = io.Custom("STYLEMOTIF_MOTION")
Style = io.Custom("STYLEMOTIF_STYLE")
CATEGORY = "UniStyle/StyleMotif"


def _motion(features):
    return {"features": check_features(features).detach().float().cpu().reshape(-1, 263), "fps": FPS}


def _progress(total):
    bar = comfy.utils.ProgressBar(total)
    return lambda done, n: bar.update_absolute(done, n)


def _embedding(conditioning=None, clip_vision_output=None):
    """A single embedding vector from a ComfyUI CLIP-vision output or CONDITIONING (pooled, else token mean)."""
    if clip_vision_output is not None:
        emb = getattr(clip_vision_output, "image_embeds", None)
        if emb is None:
            raise ValueError("clip_vision_output: has no image_embeds (use a CLIP-vision model with a projection)")
        return emb.reshape(emb.shape[0], -1)[0].float().cpu()
    if conditioning is not None:
        if not conditioning:
            raise ValueError("conditioning: empty")
        tokens, extra = conditioning[0][0], conditioning[0][1]
        pooled = extra.get("pooled_output")
        return (pooled.reshape(-1) if pooled is not None else tokens[0].mean(0)).float().cpu()
    return None


class StyleMotifModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifModelLoader", display_name="StyleMotif Model Loader", category=CATEGORY,
            description="Load a StyleMotif model (MLD VAE + denoiser, style encoder, alignment head, style bank).",
            inputs=[io.Combo.Input("model_name", options=folder_paths.get_filename_list(FOLDER),
                                   tooltip="A .safetensors file from models/stylemotif.")],
            outputs=[Model.Output(display_name="model")])

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(FOLDER, model_name)
        return io.NodeOutput(StyleMotif.load(path, comfy.model_management.get_torch_device()))


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
        vec = model.encode_style(motion["features"], "motion")[0].cpu()
        return io.NodeOutput({"vector": vec, "source": "motion"})


class StyleMotifStyleFromEmbedding(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifStyleFromEmbedding", display_name="StyleMotif Motion Style from Text or Image",
            **search_aliases("motion style"), category=CATEGORY,
            description="Project a frozen embedding into the style space and retrieve/blend the nearest bank styles.",
            inputs=[Model.Input("model", tooltip="The StyleMotif model (its alignment head and style bank are used)."),
                    io.String.Input("text", default="old", tooltip="Style description for the model's built-in text "
                                    "embedding; used when no conditioning / clip_vision_output is connected."),
                    io.Int.Input("top_k", default=1, min=1, max=100, tooltip="How many nearest bank styles to blend."),
                    io.Float.Input("temperature", default=0.1, min=0.001, max=10.0, step=0.01,
                                   tooltip="Softmax temperature over cosine similarities when blending the top k."),
                    io.Conditioning.Input("conditioning", optional=True, tooltip="A CLIP text encoding (pooled output) "
                                          "from the embedding space the model was aligned to."),
                    io.ClipVisionOutput.Input("clip_vision_output", optional=True, tooltip="A CLIP-vision image embedding "
                                              "from the embedding space the model was aligned to.")],
            outputs=[Style.Output(display_name="style"), io.String.Output(display_name="matches")])

    @classmethod
    def execute(cls, model, text, top_k, temperature, conditioning=None, clip_vision_output=None) -> io.NodeOutput:
        emb = _embedding(conditioning, clip_vision_output)
        if emb is None:
            if not text.strip():
                raise ValueError("text: empty; give a style description or connect conditioning / clip_vision_output")
            emb = model.embed_text(text)[0]
        vec, weights = model.style_from_embedding(emb, top_k, temperature)
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
        vec = blend_styles(torch.stack(styles), weights)
        return io.NodeOutput({"vector": vec, "source": f"blend {weights}"})


class StyleMotifStylize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifStylize", display_name="StyleMotif Motion Style Transfer",
            **search_aliases("motion style", "style transfer", "stylize motion"), category=CATEGORY,
            description="Text (or a content motion) + a style -> stylized motion, by DDIM with cross normalization "
                        "after block m (gamma 0 = plain MLD generation).",
            inputs=[Model.Input("model", tooltip="The StyleMotif model."),
                    Style.Input("style", tooltip="Style vector from Motion Style from Clip, Motion Style from Text or Image, or Blend Motion Styles."),
                    io.String.Input("text", default="a person walks forward", multiline=True,
                                    tooltip="Content description (ignored when content_motion or conditioning is connected)."),
                    io.Float.Input("gamma", default=0.6, min=0.0, max=5.0, step=0.05,
                                   tooltip="Cross-norm scale γ; 0 disables the style."),
                    io.Int.Input("block_m", default=0, min=0, max=63,
                                 tooltip="Denoiser block (0-based) after which the style is fused, once."),
                    io.Int.Input("steps", default=20, min=1, max=1000, tooltip="DDIM steps."),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, control_after_generate=True,
                                 tooltip="Seed of the initial noise."),
                    io.Float.Input("guidance", default=2.5, min=0.0, max=20.0, step=0.1,
                                   tooltip="Classifier-free text guidance scale."),
                    io.Int.Input("frames", default=40, min=2, max=1000, tooltip="Length of a generated motion (20 fps)."),
                    io.Float.Input("strength", default=0.7, min=0.01, max=1.0, step=0.01,
                                   tooltip="Style transfer only: how much of the content motion is re-noised."),
                    Motion.Input("content_motion", optional=True,
                                 tooltip="Connect for motion style transfer (keeps this motion's content and length)."),
                    io.Conditioning.Input("conditioning", optional=True,
                                          tooltip="Content text embedding from CLIP; its width must match the model's text space.")],
            outputs=[Motion.Output(display_name="motion")])

    @classmethod
    def execute(cls, model, style, text, gamma, block_m, steps, seed, guidance, frames, strength, content_motion=None,
                conditioning=None) -> io.NodeOutput:
        emb = _embedding(conditioning)
        emb = model.embed_text(text)[0] if emb is None else emb
        common = dict(style=style["vector"], gamma=gamma, fuse_after=block_m, steps=steps, seed=seed, progress=_progress(steps))
        if content_motion is not None:
            out = model.transfer(content_motion["features"], strength=strength, text_emb=emb[None] if conditioning is not None else None,
                                 **common)
        else:
            out = model.generate(emb[None], frames=frames, guidance=guidance, **common)
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
        joints = recover_from_ric(motion["features"].double())
        frames = render_skeleton(joints, width, height, azimuth, elevation, zoom, follow_root)
        return io.NodeOutput(torch.from_numpy(frames))


class StyleMotifSaveMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifSaveMotion", display_name="StyleMotif Save Motion", category=CATEGORY, is_output_node=True,
            inputs=[Motion.Input("motion", tooltip="The motion to save."),
                    io.String.Input("filename_prefix", default="stylemotif/motion", tooltip="Prefix under the output folder."),
                    io.Combo.Input("format", options=["npy", "bvh", "npy+bvh"], default="npy+bvh",
                                   tooltip="npy: HumanML3D [F, 263] features; bvh: skeleton animation (centimetres).")],
            outputs=[])

    @classmethod
    def execute(cls, motion, filename_prefix, format) -> io.NodeOutput:
        out_dir = folder_paths.get_output_directory()
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
        return io.NodeOutput(ui={"motions": [{"filename": f, "subfolder": subfolder, "type": "output"} for f in saved]})


def _find_motion_file(path):
    if os.path.isabs(path):
        candidates = [path]
    else:
        candidates = [os.path.join(folder_paths.get_input_directory(), path)]
        candidates += [os.path.join(d, path) for d in folder_paths.get_folder_paths(FOLDER)]
    for c in candidates:
        if os.path.isfile(c):
            return c
    raise FileNotFoundError(f"file: {path!r} not found in the input folder or models/stylemotif")


class StyleMotifLoadMotion(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifLoadMotion", display_name="StyleMotif Load Motion", category=CATEGORY,
            inputs=[io.String.Input("file", default="samples/walk_old.bvh",
                                    tooltip="A .npy ([F, 263] HumanML3D features or [F, 22, 3] joints) or .bvh with the "
                                            "22 HumanML3D joint names; relative to the input folder or models/stylemotif.")],
            outputs=[Motion.Output(display_name="motion")])

    @classmethod
    def execute(cls, file) -> io.NodeOutput:
        path = _find_motion_file(file)
        if path.lower().endswith(".bvh"):
            joints, _ = load_bvh(path)
            return io.NodeOutput(_motion(features_from_joints(joints)))
        if path.lower().endswith(".npy"):
            arr = np.load(path, allow_pickle=False)
            if arr.ndim == 3 and arr.shape[1:] == (NUM_JOINTS, 3):
                return io.NodeOutput(_motion(features_from_joints(arr)))
            return io.NodeOutput(_motion(check_features(arr, f"file {file}")))
        raise ValueError(f"file: expected a .npy or .bvh file, got {file!r}")


class StyleMotifTrain(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="StyleMotifTrain", display_name="StyleMotif Train (procedural)", category=CATEGORY, is_output_node=True,
            description="Train a StyleMotif model on procedural motion (MLD VAE, denoiser, style encoder, alignment) and "
                        "save it to models/stylemotif. Resumable: stage checkpoints live in models/stylemotif/<name>_ckpt.",
            inputs=[io.String.Input("name", default="stylemotif_procedural", tooltip="Output model name (no extension)."),
                    io.Int.Input("clips", default=500, min=20, max=100000, tooltip="Number of procedural training clips."),
                    io.Int.Input("vae_steps", default=DEFAULT_STEPS["vae"], min=1, max=10 ** 6, tooltip="MLD VAE steps."),
                    io.Int.Input("denoiser_steps", default=DEFAULT_STEPS["denoiser"], min=1, max=10 ** 6, tooltip="Latent denoiser steps."),
                    io.Int.Input("stylization_steps", default=DEFAULT_STEPS["stylization"], min=1, max=10 ** 6,
                                 tooltip="Style encoder steps with the MLD frozen."),
                    io.Int.Input("alignment_steps", default=DEFAULT_STEPS["alignment"], min=1, max=10 ** 6,
                                 tooltip="Alignment head (contrastive) steps."),
                    io.Int.Input("latent_dim", default=64, min=16, max=1024, step=16, tooltip="Latent / denoiser width D."),
                    io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFF, tooltip="Seed for data and initialisation.")],
            outputs=[Model.Output(display_name="model")])

    @classmethod
    def execute(cls, name, clips, vae_steps, denoiser_steps, stylization_steps, alignment_steps, latent_dim, seed) -> io.NodeOutput:
        if not name.strip() or os.sep in name or "/" in name:
            raise ValueError(f"name: expected a plain file name, got {name!r}")
        root = folder_paths.get_folder_paths(FOLDER)[0]
        steps = {"vae": vae_steps, "denoiser": denoiser_steps, "stylization": stylization_steps, "alignment": alignment_steps}
        total = sum(steps.values())
        bar = comfy.utils.ProgressBar(total)
        offsets = {"vae": 0, "denoiser": vae_steps, "stylization": vae_steps + denoiser_steps,
                   "alignment": vae_steps + denoiser_steps + stylization_steps}
        config = StyleMotifConfig(latent_dim=latent_dim)
        with torch.inference_mode(False), torch.enable_grad():  # ComfyUI executes nodes under inference mode
            model, _ = train_procedural(clips, config, steps, seed, os.path.join(root, f"{name}_ckpt"),
                                        progress=lambda stage, done, n: bar.update_absolute(offsets[stage] + done, total))
        model.save(os.path.join(root, f"{name}.safetensors"))
        return io.NodeOutput(model.to(comfy.model_management.get_torch_device()))


NODES = [StyleMotifModelLoader, StyleMotifEncodeStyle, StyleMotifStyleFromEmbedding, StyleMotifBlendStyles, StyleMotifStylize,
         StyleMotifRenderSkeleton, StyleMotifSaveMotion, StyleMotifLoadMotion, StyleMotifTrain]
