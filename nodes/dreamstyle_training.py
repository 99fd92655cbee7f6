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
from ..dreamstyle.training_memory_plan import GRANULARITIES, WanShape, plan
from . import guards
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


def memory_plan(diffusion_model, pairs, config, compute_dtype, device):
    """The training step's memory plan for the largest pair, with the device's memory as the budget."""
    raw = max((p.record["raw"] for p in pairs), key=lambda r: r["frames"] * r["height"] * r["width"])
    names = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16",
             torch.float8_e4m3fn: "fp8_e4m3fn", torch.float8_e5m2: "fp8_e5m2"}
    base = names.get(next(diffusion_model.blocks.parameters()).dtype, "bf16")
    return plan(WanShape.from_model(diffusion_model), raw["frames"], raw["height"], raw["width"], rank=config.rank,
                base_dtype=base, compute_dtype=names.get(compute_dtype, "bf16"), batch=config.batch,
                gradient_checkpointing=config.gradient_checkpointing, block_swap=config.block_swap,
                offload_activations=config.offload_activations, optimizer_offload=config.optimizer_offload,
                granularity=config.checkpoint_granularity, prefetch=device.type == "cuda",
                budget=comfy.model_management.get_total_memory(device))


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
                               tooltip="bf16: autocast compute (LoRA and AdamW in fp32). fp32: full precision. "
                                       "An fp8 base (UNETLoader weight_dtype fp8_e4m3fn) computes on bf16 copies "
                                       "of one block at a time."),
                io.Int.Input("block_swap", default=0, min=0, max=200, optional=True,
                             tooltip="Keep the last N DiT blocks off the GPU: each is copied in when it runs (the "
                                     "next one prefetched meanwhile). Needs gradient_checkpointing. See the "
                                     "memory_plan output for what fits."),
                io.Boolean.Input("offload_activations", default=False, optional=True,
                                 tooltip="Keep what gradient checkpointing stores (each block's input) in CPU memory "
                                         "until the backward pass needs it. Needs gradient_checkpointing."),
                io.Boolean.Input("optimizer_offload", default=False, optional=True,
                                 tooltip="Run AdamW on the CPU: its moments (8 bytes per LoRA parameter, 3.2 GB at "
                                         "14B rank 64) never take GPU memory."),
                io.Boolean.Input("overwrite", default=False, optional=True,
                                 tooltip="Replace models/loras/<lora_name>.safetensors if it exists (off: refuse)."),
                io.Boolean.Input("gradient_checkpointing", default=True, optional=True,
                                 tooltip="Recompute block activations in the backward pass: much less memory, "
                                         "about a third more time."),
                io.Boolean.Input("token_specific", default=True, optional=True,
                                 tooltip="On: one up matrix per token type (DreamStyle). Off: a plain LoRA of the "
                                         "same rank, for comparison."),
                io.Combo.Input("checkpoint_granularity", options=list(GRANULARITIES), default="block",
                               optional=True,
                               tooltip="With gradient_checkpointing: block recomputes each DiT block whole in the "
                                       "backward pass; sublayer recomputes its self-attention, cross-attention and "
                                       "FFN one at a time inside it (the same gradients; less memory, the attention "
                                       "layers run once more). The memory_plan output gives both."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="CLIP-vision model (ViT-H): style-image batches then also feed the style "
                                            "image's features to Wan's image branch, as in DreamStyle."),
            ],
            outputs=[
                io.Model.Output(display_name="model", tooltip="The input model with the trained LoRA applied."),
                io.String.Output(display_name="lora_name", tooltip="File name of the saved LoRA in models/loras."),
                io.Image.Output(display_name="loss_curve", tooltip="Loss per step (grey) and its moving average."),
                io.String.Output(display_name="memory_plan",
                                 tooltip="The step's device memory, computed before training: base weights, LoRA "
                                         "and AdamW, activations, working set; and whether it fits this device."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    def execute(cls, model, vae, clip, dataset_dir, stage, steps, rank, lr, batch, accumulation, ratio, seed,
                save_every, lora_name, init_lora="", resume=True, precision="bf16", block_swap=0,
                offload_activations=False, optimizer_offload=False, overwrite=False, gradient_checkpointing=True,
                token_specific=True, clip_vision=None, checkpoint_granularity="block") -> io.NodeOutput:
        guards.finite(lr, "lr")
        out_path = guards.new_model_path("loras", lora_name, "lora_name", overwrite=overwrite)
        name = os.path.basename(out_path)[:-len(".safetensors")]
        dataset = guards.find_output_folder(dataset_dir, "dataset_dir", kind="unistyle_datasets")
        init_path = guards.model_file("loras", init_lora.strip(), "init_lora") if (init_lora or "").strip() else None
        try:
            config = TrainConfig(stage=stage, steps=steps, rank=rank, lr=lr, batch=batch, accumulation=accumulation,
                                 ratio=ratio, seed=seed, save_every=save_every, precision=precision,
                                 gradient_checkpointing=gradient_checkpointing, token_specific=token_specific,
                                 block_swap=block_swap, offload_activations=offload_activations,
                                 optimizer_offload=optimizer_offload, checkpoint_granularity=checkpoint_granularity)
        except ValueError as e:
            raise guards.NodeInputError(str(e)) from e
        run_dir = guards.output_folder(os.path.join("dreamstyle_training", name), "lora_name")
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
            dm = patcher.model.diffusion_model
            device = patcher.load_device
            compute = patcher.model.manual_cast_dtype or next(dm.blocks.parameters()).dtype
            mem = memory_plan(dm, pairs, config, compute, device)
            log.info("DreamStyleTrainTokenLoRA %s:\n%s", name, mem.report())
            # ComfyUI's memory manager loads what fits next to the step's own needs (partially if it must);
            # the trainer streams the rest and the swapped blocks per call (training_block_swap.py)
            base = mem.terms["base weights resident"]
            comfy.model_management.load_models_gpu([patcher], memory_required=int(mem.peak - base))
            trainer = DreamStyleTrainer(dm, encoders, dataset, config, run_dir, init_lora=init_path, resume=resume,
                                        progress=progress, device=device, compute_dtype=compute,
                                        identity={"base": fingerprint(dm), "encoders": encoders.fingerprint})
            log.info("DreamStyleTrainTokenLoRA %s: %d pairs, stage %s, %d steps from step %d", name,
                     len(trainer.pairs), stage, steps, trainer.step)
            result = trainer.run(out_path)
            loras = loras_from_file(out_path, dm)
        curve = torch.from_numpy(loss_curve_image(result.losses, title=f"{name} ({stage})").astype(np.float32) / 255)
        return io.NodeOutput(apply_token_lora(model, loras, 1.0), os.path.basename(out_path), curve[None],
                             mem.report())


NODES = [DreamStyleTrainTokenLoRA]
