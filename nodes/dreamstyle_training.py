"""DreamStyle training node: train a token-specific LoRA (CT or SFT stage) on a paired-data folder, on
the host's device, with the core in dreamstyle/training.py."""
import logging
import os

import numpy as np
import torch

import comfy.model_management
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..dreamstyle.feature_cache import FeatureCache, fingerprint
from ..dreamstyle.loss_curve import loss_curve_image
from ..dreamstyle.lora_file import parse_lora, read_safetensors
from ..dreamstyle.token_lora import TokenLoRA, adapted_layer_names
from ..dreamstyle.training import STAGES, DreamStyleTrainer, TrainConfig
from ..dreamstyle.training_data import EncodedPairs, Encoders, load_pairs
from .dreamstyle_patch import apply_token_lora

CATEGORY = "UniStyle/DreamStyle/Training"
log = logging.getLogger("UniStyle.DreamStyle")


def comfy_encoders(vae, clip, clip_vision=None, latent_in=None):
    """The core's Encoders from ComfyUI objects: VAE (Wan2.1), CLIP (UMT5 for Wan), CLIP_VISION (optional)."""
    def vae_encode(video):
        return vae.encode(video).float().cpu()

    def text_encode(caption):
        return clip.encode_from_tokens(clip.tokenize(caption)).float().cpu()

    clip_encode = None
    if clip_vision is not None:
        def clip_encode(image):
            return clip_vision.encode_image(image, crop="center").penultimate_hidden_states.float().cpu()

    modules = [getattr(vae, "first_stage_model", None), getattr(clip, "cond_stage_model", None),
               getattr(clip_vision, "model", None)]
    enc = Encoders(vae_encode, text_encode, clip_encode, fingerprint=fingerprint(*modules))
    if latent_in is not None:
        enc.latent_in = lambda z: latent_in(z.float()).float()
    return enc


def resolve_dataset(path):
    """dataset_dir: absolute, or relative to ComfyUI's output folder (where DreamStyle Save Pair writes)."""
    if not path or not path.strip():
        raise ValueError("dataset_dir: empty; give the folder of a DreamStyle paired dataset (manifest.jsonl)")
    path = path.strip()
    full = path if os.path.isabs(path) else os.path.join(folder_paths.get_output_directory(), path)
    if not os.path.isdir(full):
        raise ValueError(f"dataset_dir: {full} is not a folder (relative paths are under ComfyUI's output folder)")
    return full


def resolve_init_lora(name):
    if not name or not name.strip():
        return None
    name = name.strip()
    if os.path.isabs(name) and os.path.isfile(name):
        return name
    path = folder_paths.get_full_path("loras", name)
    if path is None:
        raise ValueError(f"init_lora: {name!r} is neither a file nor a LoRA in models/loras")
    return path


def _check_name(name):
    name = (name or "").strip()
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"lora_name: expected a plain file name such as dreamstyle_ct, got {name!r}")
    return name[:-len(".safetensors")] if name.endswith(".safetensors") else name


def make_trainable(module):
    """ComfyUI loads models inside torch.inference_mode(), so their weights are inference tensors, which
    autograd cannot save for the backward pass through the frozen layers. Swap each such parameter and
    buffer for a normal tensor with the same values (one tensor at a time; the values never change)."""
    swapped = 0
    for sub in module.modules():
        for name, p in list(sub._parameters.items()):
            if p is not None and p.is_inference():
                sub._parameters[name] = torch.nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
                swapped += 1
        for name, b in list(sub._buffers.items()):
            if b is not None and b.is_inference():
                sub._buffers[name] = b.clone()
                swapped += 1
    return swapped


def loras_from_file(path, diffusion_model):
    shapes = {n: tuple(comfy.utils.get_attr(diffusion_model, n).weight.shape) for n in adapted_layer_names(diffusion_model)}
    parsed, _ = parse_lora(*read_safetensors(path), shapes)
    return {name: TokenLoRA.from_weights(down, ups, alpha) for name, (down, ups, alpha) in parsed.items()}


class DreamStyleTrainTokenLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleTrainTokenLoRA",
            display_name="DreamStyle Train Token LoRA",
            category=CATEGORY,
            description="Trains a DreamStyle token-specific LoRA (shared down, one up per token type) on a paired "
                        "dataset with flow matching, the style condition drawn per batch (text : style image : "
                        "first frame). Stage CT on the large set, then SFT on the curated set from the CT LoRA. "
                        "Resumable: checkpoints in output/dreamstyle_training/<lora_name>/; the LoRA goes to "
                        "models/loras/<lora_name>.safetensors.",
            inputs=[
                io.Model.Input("model", tooltip="The Wan2.1-I2V model to adapt (UNETLoader); its weights stay frozen."),
                io.Vae.Input("vae", tooltip="The Wan2.1 VAE: encodes the videos, first frames and style images "
                                            "(once; the latents are cached on disk)."),
                io.Clip.Input("clip", tooltip="The UMT5 text encoder for Wan (CLIPLoader type wan): encodes the captions."),
                io.String.Input("dataset_dir", default="dreamstyle_pairs",
                                tooltip="Folder of a DreamStyle paired dataset (manifest.jsonl); relative paths are "
                                        "under ComfyUI's output folder. Its 'train' split is used."),
                io.Combo.Input("stage", options=list(STAGES), default="CT",
                               tooltip="CT: continual training on the large automatically filtered set. SFT: "
                                       "fine-tuning on the small curated set, starting from init_lora (the CT LoRA)."),
                io.Int.Input("steps", default=6000, min=1, max=1000000,
                             tooltip="Optimizer steps (the paper: 6000 for CT, 3000 for SFT)."),
                io.Int.Input("rank", default=64, min=1, max=1024, tooltip="LoRA rank (the paper: 64)."),
                io.Float.Input("lr", default=4e-5, min=1e-8, max=1.0, step=1e-6,
                               tooltip="AdamW learning rate (the paper: 4e-5)."),
                io.Int.Input("batch", default=1, min=1, max=256,
                             tooltip="Samples per micro-batch (pairs in one batch must share frame count and size)."),
                io.Int.Input("accumulation", default=16, min=1, max=1024,
                             tooltip="Micro-batches per optimizer step; effective batch = batch x accumulation "
                                     "(the paper: 16)."),
                io.String.Input("ratio", default="1:2:1",
                                tooltip="Sampling ratio of the style condition per batch, text : style image : "
                                        "first frame (the paper: 1:2:1)."),
                io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff,
                             tooltip="Seed of the data order, condition choice, noise and timesteps (same seed, "
                                     "same run)."),
                io.Int.Input("save_every", default=250, min=0, max=1000000,
                             tooltip="Write a resumable checkpoint every N steps (0: only at the end)."),
                io.String.Input("lora_name", default="dreamstyle_ct",
                                tooltip="File name of the trained LoRA in models/loras (and of the run folder)."),
                io.String.Input("init_lora", default="", optional=True,
                                tooltip="LoRA to start from (for SFT: the CT LoRA; connect the CT node's lora_name "
                                        "output or give a file in models/loras). Empty: a fresh LoRA."),
                io.Boolean.Input("resume", default=True, optional=True,
                                 tooltip="Continue from the last checkpoint of this lora_name's run folder, if any."),
                io.Combo.Input("precision", options=["bf16", "fp32"], default="bf16", optional=True,
                               tooltip="bf16: autocast compute (LoRA and AdamW in fp32). fp32: full precision."),
                io.Boolean.Input("gradient_checkpointing", default=True, optional=True,
                                 tooltip="Recompute block activations in the backward pass: much less memory, "
                                         "about a third more time."),
                io.Boolean.Input("token_specific", default=True, optional=True,
                                 tooltip="On: one up matrix per token type (DreamStyle). Off: a plain LoRA of the "
                                         "same rank, for comparison."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="CLIP-vision model (ViT-H): style-image batches then also feed the style "
                                            "image's features to Wan's image branch, as in DreamStyle."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The input model with the trained LoRA applied."),
                io.String.Output(display_name="lora_name", tooltip="File name of the saved LoRA in models/loras."),
                io.Image.Output(display_name="loss_curve", tooltip="Loss per step (grey) and its moving average."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, vae, clip, dataset_dir, stage, steps, rank, lr, batch, accumulation, ratio, seed,
                save_every, lora_name, init_lora="", resume=True, precision="bf16", gradient_checkpointing=True,
                token_specific=True, clip_vision=None) -> io.NodeOutput:
        name = _check_name(lora_name)
        dataset = resolve_dataset(dataset_dir)
        init_path = resolve_init_lora(init_lora)
        config = TrainConfig(stage=stage, steps=steps, rank=rank, lr=lr, batch=batch, accumulation=accumulation,
                             ratio=ratio, seed=seed, save_every=save_every, precision=precision,
                             gradient_checkpointing=gradient_checkpointing, token_specific=token_specific)
        run_dir = os.path.join(folder_paths.get_output_directory(), "dreamstyle_training", name)
        out_path = os.path.join(folder_paths.get_folder_paths("loras")[0], f"{name}.safetensors")
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
        node_id = getattr(getattr(cls, "hidden", None), "unique_id", None)
        pbar = comfy.utils.ProgressBar(steps, node_id=node_id)

        def progress(step, total, loss):
            pbar.update_absolute(step, total)
            text = f"step {step}/{total}  loss {loss:.5f}"
            log.info("DreamStyleTrainTokenLoRA %s: %s", name, text)
            try:
                from server import PromptServer
                if PromptServer.instance is not None and node_id is not None:
                    PromptServer.instance.send_progress_text(text, node_id)
            except Exception:  # no server (scripts, tests): the log line is enough
                pass

        with torch.inference_mode(False):
            patcher = model.clone()
            encoders = comfy_encoders(vae, clip, clip_vision, patcher.model.process_latent_in)
            # encode the whole dataset first (VAE / text / CLIP-vision on the device, cached on disk), so the
            # encoders are not swapped in next to the diffusion model during training
            pairs = load_pairs(dataset, config.split)
            cache = FeatureCache(os.path.join(run_dir, "feature_cache"), encoders.fingerprint)
            EncodedPairs(pairs, encoders, cache).encode_all(
                lambda done, total: log.info("DreamStyleTrainTokenLoRA %s: encoded %d/%d pairs", name, done, total))
            comfy.model_management.load_models_gpu([patcher], force_full_load=True)
            dm = patcher.model.diffusion_model
            if make_trainable(dm):
                log.info("DreamStyleTrainTokenLoRA: the model's weights were inference tensors; now normal tensors")
            trainer = DreamStyleTrainer(dm, encoders, dataset, config, run_dir, init_lora=init_path, resume=resume,
                                        progress=progress)
            log.info("DreamStyleTrainTokenLoRA %s: %d pairs, stage %s, %d steps from step %d", name,
                     len(trainer.pairs), stage, steps, trainer.step)
            result = trainer.run(out_path)
            loras = loras_from_file(out_path, dm)
        curve = torch.from_numpy(loss_curve_image(result.losses, title=f"{name} ({stage})").astype(np.float32) / 255)
        return io.NodeOutput(apply_token_lora(model, loras, 1.0), os.path.basename(out_path), curve[None])


NODES = [DreamStyleTrainTokenLoRA]
