"""Train a DreamStyle token LoRA from the command line, on one process or many (torchrun).

    python scripts/train_dreamstyle.py --config cfg.json
    torchrun --nproc_per_node 8 scripts/train_dreamstyle.py --config cfg.json
    python scripts/train_dreamstyle.py --config cfg.json --plan     # the memory plan only, then exit

The same core as the ComfyUI node (dreamstyle/training.py), the same checkpoints (resumable: rerun the
same command after a crash) and the same token-LoRA file. Under torchrun each process takes
batch / N samples of every micro-batch and DistributedDataParallel averages the gradients (NCCL on
GPUs, gloo on CPU), so the loss curve does not depend on N. "shard_base": "fsdp" (or "fsdp_offload":
shards on the CPU) shards the frozen base over the N processes with FSDP instead of giving each a whole
copy; the model is then loaded on the CPU and each process moves only its shards to its GPU. Config (JSON):

  {"dataset": "pairs/", "run_dir": "runs/ct", "output": "loras/dreamstyle_ct.safetensors",
   "init_lora": null, "resume": true, "cache_dir": null, "loss_log": "runs/ct/loss.jsonl",
   "train": {"stage": "CT", "steps": 6000, "rank": 64, "lr": 4e-5, "batch": 2, "accumulation": 1,
             "ratio": "1:2:1", "seed": 0, "save_every": 250, "precision": "bf16",
             "gradient_checkpointing": true, "shard_base": "none", "block_swap": 0,
             "offload_activations": false, "optimizer_offload": false, "checkpoint_granularity": "block"},
   "model": {"diffusion_model": ".../wan2.1_i2v_480p_14B_bf16.safetensors",
             "vae": ".../wan_2.1_vae.safetensors", "text_encoder": ".../umt5_xxl_fp16.safetensors",
             "clip_vision": ".../clip_vision_h.safetensors", "base_dtype": "bf16"}}

"base_dtype": bf16 (default), fp16, fp32 or fp8_e4m3fn (the base stored in fp8, computed on bf16 copies of
one block at a time). "block_swap": N keeps the last N blocks in pinned CPU memory and copies each to the
GPU when it runs, the next one prefetched (needs gradient_checkpointing); "offload_activations" keeps the
checkpointed block inputs in CPU memory until the backward pass; "optimizer_offload" runs AdamW on the CPU;
"checkpoint_granularity": "sublayer" recomputes each block's self-attention, cross-attention and FFN one at
a time inside the block's recomputation (the same gradients, less memory; dreamstyle/training_sublayers.py).
`--plan` prints the memory plan (dreamstyle/training_memory_plan.py) for the dataset's largest pair and
whether it fits this GPU, with block granularity also what sublayer would need, from the model file's
header alone (no weights are read); `--frames/--height/--width` plan another size.

"model" may instead name a Python factory, {"factory": "file.py:build", ...}: build(config) returns
(model, dreamstyle.training_data.Encoders) (tests use a toy model this way). Paths in the config are
relative to the config file.
"""
import argparse
import gc
import importlib.util
import json
import logging
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def _path(base, p):
    return p if p is None or os.path.isabs(p) else os.path.join(base, p)


def load_factory(spec, base):
    file, _, name = spec.rpartition(":")
    file = _path(base, file)
    module_spec = importlib.util.spec_from_file_location(f"dreamstyle_factory_{abs(hash(file))}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def comfy_model(opts, base, device):
    """(Wan diffusion model, Encoders) loaded with ComfyUI's own loaders."""
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import torch
    import comfy.clip_vision
    import comfy.sd
    import comfy.utils
    BASE_DTYPES = base_dtypes()
    pack = _import_pack()
    training_nodes = importlib.import_module("unistyle_pack.nodes.dreamstyle_training")
    dtype = BASE_DTYPES[opts.get("base_dtype", "bf16")]
    patcher = comfy.sd.load_diffusion_model(_path(base, opts["diffusion_model"]), model_options={"dtype": dtype})
    model = patcher.model.diffusion_model
    vae = comfy.sd.VAE(sd=comfy.utils.load_torch_file(_path(base, opts["vae"])))
    clip = comfy.sd.load_clip([_path(base, opts["text_encoder"])], clip_type=comfy.sd.CLIPType.WAN)
    clip_vision = comfy.clip_vision.load(_path(base, opts["clip_vision"])) if opts.get("clip_vision") else None
    del pack
    return model, training_nodes.comfy_encoders(vae, clip, clip_vision, patcher.model.process_latent_in)


def base_dtypes():
    import torch
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "fp8_e4m3fn": torch.float8_e4m3fn}


def _import_pack():
    if "unistyle_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("unistyle_pack", os.path.join(ROOT, "__init__.py"),
                                                      submodule_search_locations=[ROOT])
        module = importlib.util.module_from_spec(spec)
        sys.modules["unistyle_pack"] = module
        spec.loader.exec_module(module)
    return sys.modules["unistyle_pack"]


def memory_plan(config, base, cfg, opts, device, args):
    """The MemoryPlan of this config (training_memory_plan.py): the model's shapes from the file header (or
    the factory's model), the size from the dataset's largest pair unless --frames/--height/--width."""
    import torch
    from dreamstyle.training_data import load_pairs
    from dreamstyle.training_memory_plan import WanShape, plan
    if "factory" in opts:
        shape = WanShape.from_model(load_factory(opts["factory"], base)(config)[0])
        stored = "fp32"
    else:
        from safetensors import safe_open
        with safe_open(_path(base, opts["diffusion_model"]), "pt") as f:
            shapes = {k: f.get_slice(k).get_shape() for k in f.keys()}
        prefix = next((p for p in ("model.diffusion_model.", "diffusion_model.") if any(k.startswith(p) for k in shapes)),
                      "")
        shape = WanShape.from_shapes({k[len(prefix):]: v for k, v in shapes.items() if k.startswith(prefix)})
        stored = opts.get("base_dtype", "bf16")
    raw = max((p.record["raw"] for p in load_pairs(_path(base, config["dataset"]), cfg.split)),
              key=lambda r: r["frames"] * r["height"] * r["width"])
    budget = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    return plan(shape, args.frames or raw["frames"], args.height or raw["height"], args.width or raw["width"],
                rank=cfg.rank, base_dtype=stored, compute_dtype="bf16" if stored.startswith("fp8") else stored,
                batch=cfg.batch, gradient_checkpointing=cfg.gradient_checkpointing, block_swap=cfg.block_swap,
                offload_activations=cfg.offload_activations, optimizer_offload=cfg.optimizer_offload,
                granularity=cfg.checkpoint_granularity, prefetch=device.type == "cuda", budget=budget)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--steps", type=int, help="override train.steps")
    ap.add_argument("--plan", action="store_true", help="print the memory plan and whether it fits, then exit")
    ap.add_argument("--frames", type=int, help="--plan: frames (default: the dataset's largest pair)")
    ap.add_argument("--height", type=int, help="--plan: height")
    ap.add_argument("--width", type=int, help="--plan: width")
    a = ap.parse_args(argv)
    base = os.path.dirname(os.path.abspath(a.config))
    with open(a.config) as f:
        config = json.load(f)

    import torch
    import torch.distributed as dist
    from dreamstyle.training import DreamStyleTrainer, TrainConfig

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cpu")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"[rank {rank}] %(message)s"))
    logger = logging.getLogger("UniStyle")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    train = dict(config.get("train", {}))
    if a.steps:
        train["steps"] = a.steps
    cfg = TrainConfig.from_dict(train)
    opts = config.get("model", {})
    if a.plan:
        mem = memory_plan(config, base, cfg, opts, device, a)
        print(mem.report())
        print(json.dumps(mem.to_dict()))
        return 0 if mem.fits is not False else 3
    sharded = cfg.shards_base(world)
    if "factory" in opts:
        model, encoders = load_factory(opts["factory"], base)(config)
    else:
        model, encoders = comfy_model(opts, base, device)
    from dreamstyle.training_block_swap import place_blocks
    model = model.to("cpu") if sharded else place_blocks(model, device, cfg.block_swap)
    loss_log = _path(base, config.get("loss_log"))
    t0 = time.time()

    def progress(step, steps, loss):
        if rank == 0:
            print(f"step {step}/{steps} loss {loss:.6f} ({time.time() - t0:.1f}s)", flush=True)
            if loss_log:
                with open(loss_log, "a") as f:
                    f.write(json.dumps({"step": step, "loss": loss}) + "\n")

    trainer = DreamStyleTrainer(model, encoders, _path(base, config["dataset"]), cfg, _path(base, config["run_dir"]),
                                init_lora=_path(base, config.get("init_lora")), resume=config.get("resume", True),
                                cache_dir=_path(base, config.get("cache_dir")), progress=progress, device=device)
    output = _path(base, config.get("output"))
    if output and rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    result = trainer.run(output)
    if rank == 0:
        print(json.dumps({"step": result.step, "output": result.lora_path, "losses": result.losses,
                          "cache_hits": result.cache_hits, "cache_misses": result.cache_misses}))
    if world > 1:
        del trainer, result
        gc.collect()  # DDP / FSDP state in reference cycles goes while the process group is still alive
        dist.barrier()  # no process tears down its group while a peer is still in a collective
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
