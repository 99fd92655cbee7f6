"""The DreamStyle token-LoRA trainer (plain PyTorch; ComfyUI's nodes and the torchrun CLI drive it).

DreamStyle "Loss & Training": flow matching on the unified condition layout (flow_matching.py), a
per-batch style condition text : style image : first frame = 1 : 2 : 1 (condition_sampler.py), AdamW,
two stages — CT on the large set, then SFT on the curated set starting from the CT LoRA — rank 64,
lr 4e-5, effective batch 16 (= batch × accumulation × processes here).

The base model is any nn.Module with ComfyUI's WanModel forward signature
    model(x [B, 36, T, h, w], t [B] = 1000 σ, context [B, L, 4096], clip_fea=[B, 257, 1280] or None)
and blocks.N.self_attn.{q,k,v,o} / ffn.{0,2} linear layers. Only the token LoRA trains: every base
parameter is frozen for the run (its requires_grad flags are restored afterwards) and never written,
so the base weights are bit-identical after training. The LoRA runs through TokenLoRAHooks, routed by
the batch's FrameLayout (first frame / video / style image up-matrices); `token_specific=False`
trains a plain LoRA of the same rank (every token through one up-matrix) for comparisons.

Everything random is a pure function of (seed, step, sample index) — see training_data.py — and the
checkpoint (training_checkpoint.py) holds the LoRA, AdamW state, torch RNG, step, data position and
loss history, so a run killed at any moment and resumed ends with the LoRA an uninterrupted run
gives. With torch.distributed initialised, each process takes its share of every micro-batch and
DistributedDataParallel averages the gradients; the global batch, and so the loss curve, is the same
for any number of processes. `shard_base="fsdp"` shards the frozen base over the processes with FSDP
(one unit per Wan block; "fsdp_offload" keeps the shards on the CPU) so no process holds the whole base;
the LoRA stays replicated (sharded_base).
"""
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from .condition_latents import condition_latents, plan_layout
from .condition_sampler import ConditionSampler, parse_ratio
from .feature_cache import FeatureCache
from .flow_matching import flow_matching_loss, sample_sigma, timestep, training_pair
from .layout import VIDEO
from .lora_file import LoRAFileError, parse_lora, read_safetensors, write_safetensors_atomic, token_lora_tensors
from .token_lora import TokenLoRA, TokenLoRAHooks, adapted_layer_names, tokens_per_frame
from . import training_block_swap
from .training_block_swap import StreamedBase, compute_dtype_for, offload_allocation, swapped_blocks
from .training_sublayers import GRANULARITIES
from .training_checkpoint import (CheckpointError, final_lora_metadata, latest_checkpoint, load_optimizer,
                                  read_checkpoint, save_checkpoint)
from .training_data import (DataOrder, EncodedPairs, load_pairs, pad_contexts, reference_choice,
                            sample_generator)

log = logging.getLogger("UniStyle.DreamStyle")

STAGES = ("CT", "SFT")
PRECISIONS = ("fp32", "bf16")
SHARD_BASE = ("none", "fsdp", "fsdp_offload")
# config fields that change what a run computes: a resumed run must match them (not shard_base: the
# sharded base computes what the whole one does, so a run may resume with or without sharding)
TRAJECTORY_FIELDS = ("stage", "rank", "alpha", "lr", "weight_decay", "batch", "accumulation", "ratio", "seed", "shift",
                     "precision", "token_specific", "max_grad_norm", "split", "input_perturbation")


@dataclass
class TrainConfig:
    stage: str = "CT"
    steps: int = 100
    rank: int = 64
    alpha: Optional[float] = None
    lr: float = 4e-5
    weight_decay: float = 0.01
    batch: int = 1                   # samples per micro-batch, over all processes
    accumulation: int = 1            # micro-batches per optimizer step
    ratio: tuple = (1.0, 2.0, 1.0)   # text : style image : first frame
    seed: int = 0
    save_every: int = 0              # checkpoint every N steps (0: only at the end)
    shift: float = 5.0               # Wan's timestep shift
    precision: str = "fp32"          # fp32 | bf16 (autocast; the LoRA and AdamW stay fp32)
    gradient_checkpointing: bool = False
    token_specific: bool = True      # False: a plain LoRA (one up matrix for all tokens)
    max_grad_norm: float = 1.0       # 0: no clipping
    input_perturbation: float = 0.0  # γ of the x_0-correcting input perturbation (flow_matching.py); 0: off
    split: str = "train"
    keep_checkpoints: int = 2
    shard_base: str = "none"         # none | fsdp | fsdp_offload (with several processes; see sharded_base)
    block_swap: int = 0              # the last N blocks stay on the offload device (training_block_swap.py)
    offload_activations: bool = False  # checkpointed block inputs wait in CPU memory until the backward pass
    optimizer_offload: bool = False  # AdamW's moments (and an fp32 copy of the LoRA it updates) in CPU memory
    checkpoint_granularity: str = "block"  # block | sublayer (self-attention, cross-attention, FFN: training_sublayers.py)

    def __post_init__(self):
        self.ratio = parse_ratio(self.ratio)
        if self.stage not in STAGES:
            raise ValueError(f"stage: expected one of {STAGES}, got {self.stage!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: expected one of {PRECISIONS}, got {self.precision!r}")
        if self.shard_base not in SHARD_BASE:
            raise ValueError(f"shard_base: expected one of {SHARD_BASE}, got {self.shard_base!r}")
        for name in ("steps", "rank", "batch", "accumulation"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr: expected a positive learning rate, got {self.lr}")
        if self.checkpoint_granularity not in GRANULARITIES:
            raise ValueError(f"checkpoint_granularity: expected one of {GRANULARITIES}, "
                             f"got {self.checkpoint_granularity!r}")
        if self.checkpoint_granularity != "block" and not self.gradient_checkpointing:
            raise ValueError("checkpoint_granularity: sublayer needs gradient_checkpointing on")
        if self.checkpoint_granularity != "block" and self.shard_base != "none":
            raise ValueError("checkpoint_granularity: sublayer not with shard_base (the sharded base checkpoints whole "
                             "blocks)")
        if self.input_perturbation < 0:
            raise ValueError(f"input_perturbation: expected γ >= 0, got {self.input_perturbation}")
        if self.block_swap < 0:
            raise ValueError(f"block_swap: expected 0 or a positive number of blocks, got {self.block_swap}")
        if self.block_swap and not self.gradient_checkpointing:
            raise ValueError("block_swap: needs gradient_checkpointing on (without it autograd keeps every swapped "
                             "block's weights on the device until the backward pass, so nothing is saved)")
        if self.offload_activations and not self.gradient_checkpointing:
            raise ValueError("offload_activations: needs gradient_checkpointing on (it offloads what checkpointing keeps)")
        if self.offload_activations and self.shard_base != "none":
            raise ValueError("offload_activations: not with shard_base (the sharded base runs without streaming)")
        if self.block_swap and self.shard_base != "none":
            raise ValueError("block_swap: not with shard_base (FSDP already keeps 1/N of each block per process)")

    def shards_base(self, world):
        """Whether the base is sharded: shard_base asks for it and there are several processes to share it."""
        return self.shard_base != "none" and world > 1

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["ratio"] = list(self.ratio)
        return d

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class TrainResult:
    loras: dict
    history: list
    step: int
    lora_path: Optional[str]
    checkpoint_dir: str
    cache_hits: int
    cache_misses: int

    @property
    def losses(self):
        return [h["loss"] for h in self.history]


def new_loras(model, rank, alpha=None, seed=0, device=None):
    """A zero-effect token LoRA for every adapted layer: W_down ~ U(±1/√in) from SEED, W_up = 0."""
    g = torch.Generator().manual_seed(seed)
    loras = {}
    for name in adapted_layer_names(model):
        out_f, in_f = model.get_submodule(name).weight.shape
        lora = TokenLoRA(in_f, out_f, rank, alpha=alpha)
        with torch.no_grad():
            lora.down.copy_(torch.rand(rank, in_f, generator=g) * 2 / math.sqrt(in_f) - 1 / math.sqrt(in_f))
        loras[name] = lora.to(device) if device is not None else lora
    if not loras:
        raise ValueError(f"model: {type(model).__name__} has no Wan blocks (blocks.N.self_attn / ffn) to adapt")
    return loras


def loras_from_file(path, model, what="init_lora"):
    """The token LoRA in PATH, matched to MODEL's layers (a plain LoRA loads with one up for all types)."""
    shapes = {n: tuple(model.get_submodule(n).weight.shape) for n in adapted_layer_names(model)}
    try:
        parsed, unmatched = parse_lora(*read_safetensors(path, what=what), shapes, what=what)
    except LoRAFileError as e:
        raise ValueError(str(e)) from e
    missing = sorted(set(shapes) - set(parsed))
    if missing:
        raise ValueError(f"{what}: {path} has no weights for {len(missing)} layers of the model, e.g. {missing[0]}")
    return {name: TokenLoRA.from_weights(down, ups, alpha) for name, (down, ups, alpha) in parsed.items()}


class _TrainModule(nn.Module):
    """The LoRA parameters as one module (what DistributedDataParallel wraps) whose forward runs the base
    model; the base is held outside the module tree, so DDP neither broadcasts nor reduces it."""

    def __init__(self, model, loras):
        super().__init__()
        self.loras = nn.ModuleList([loras[n] for n in sorted(loras)])
        object.__setattr__(self, "base", model)

    def forward(self, x, t, context, clip_fea=None):
        return self.base(x, t, context, clip_fea=clip_fea)


@contextlib.contextmanager
def gradient_checkpointing(model, enabled=True):
    """Recompute each Wan block's activations in the backward pass instead of storing them."""
    blocks = list(getattr(model, "blocks", [])) if enabled else []
    for block in blocks:
        block.forward = functools.partial(training_block_swap.checkpointed, type(block).forward.__get__(block))
    try:
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


@contextlib.contextmanager
def frozen(model):
    """Every parameter of MODEL without gradients for the duration; the flags are restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            with torch.inference_mode(p.is_inference()):  # ComfyUI's weights: flags of inference tensors
                p.requires_grad_(flag)


def _shadow(module, params, memo):
    """A copy of MODULE's module tree: new module objects of the same classes that share MODULE's
    parameters, buffers, hooks and other attributes, so that FSDP can change the copy (module classes,
    hooks, registered parameters) and leave MODULE's modules as they are. Appends (parameter, copied
    module, name, device) for each registered parameter to PARAMS."""
    if id(module) in memo:
        return memo[id(module)]
    copy = object.__new__(type(module))
    copy.__dict__.update({k: (v.copy() if isinstance(v, dict) else v) for k, v in vars(module).items()})
    memo[id(module)] = copy
    for name, child in module._modules.items():
        copy._modules[name] = None if child is None else _shadow(child, params, memo)
    params += [(p, copy, name, p.device) for name, p in module._parameters.items() if p is not None]
    return copy


@contextlib.contextmanager
def sharded_base(model, device, offload=False):
    """FSDP (fully_shard) over a frozen base MODEL for the duration, on all processes of the default group.

    One FSDP unit per block of model.blocks and one for the rest (embeddings, head): each process keeps
    1/N of every weight (on DEVICE, or on the CPU with OFFLOAD) and a unit's full weights are gathered
    onto DEVICE only while it runs (forward, backward, a checkpointed block's recomputation), so hooks
    on its layers see the whole, unchanged weights. Yields a shadow of MODEL (_shadow) that carries the
    sharding; MODEL's own parameters are emptied unit by unit as they are sharded (that is the memory
    saving: MODEL may stay on the CPU, each unit moves to DEVICE as it is sharded) and are refilled
    afterwards from the shards, bit-identical, on their devices. If the body raises, nothing is gathered
    (the other processes may never join) and MODEL's parameters stay empty."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, OffloadPolicy, fully_shard
    params = []
    shadow = _shadow(model, params, {})
    buffers = [(b, b.device) for b in model.buffers()]
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    policy = CPUOffloadPolicy(pin_memory=device.type != "cpu") if offload else OffloadPolicy()
    units, pending = [], params
    for unit in (*shadow.blocks, shadow):
        fully_shard(unit, mesh=mesh, offload_policy=policy)
        mine = [e for e in pending if e[1]._parameters[e[2]] is not e[0]]  # FSDP registered a sharded one
        pending = [e for e in pending if e[1]._parameters[e[2]] is e[0]]
        for p, *_ in mine:
            p.data = p.data.new_empty(0)  # the shard is a copy: free the whole weight
        units.append((unit, mine))
    held = sum(p.to_local().numel() for p in shadow.parameters())
    total = sum(p.numel() for p in shadow.parameters())
    log.info("DreamStyle training: shard_base over %d processes, %d FSDP units; this process holds %d of %d base "
             "parameter elements", mesh.size(), len(units), held, total)
    yield shadow
    for unit, mine in units:
        unit.unshard()
        for p, module, name, dev in mine:
            p.data = module._parameters[name].detach().to(dev, copy=True)
        unit.reshard()
    for b, dev in buffers:
        b.data = b.data.to(dev)


def dataset_fingerprint(pairs):
    """sha256 over the pairs' ids and media checksums (from the manifest): which examples a run trains on."""
    h = hashlib.sha256()
    for pair in pairs:
        r = pair.record
        h.update(json.dumps([pair.id, r["raw"]["sha256"], r["stylized"]["sha256"],
                             [ref["sha256"] for ref in r["refs"]], pair.caption_sty, pair.caption_ns]).encode())
    return h.hexdigest()[:24]


def _dist():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class DreamStyleTrainer:
    """One training run (a stage) of a token LoRA on a Wan I2V model.

    run_dir holds the feature cache (unless cache_dir is given) and checkpoints/. With resume=True a run
    whose run_dir has a checkpoint continues from it. progress(step, steps, loss) is called after every
    optimizer step. The steps run on DEVICE (default: the device of the model's first weight). Unsharded,
    the base runs through StreamedBase: its weights may be anywhere (a swapped block on the CPU, a weight
    ComfyUI left on the offload device) and in fp8 (computed in COMPUTE_DTYPE, default bf16); with
    config.shard_base and several processes sharded_base moves each process's shards to DEVICE.
    IDENTITY names what the run trains on besides its settings ({"base": model name or hash, ...}); a
    resume refuses a checkpoint of another dataset or identity, naming the setting."""

    def __init__(self, model, encoders, dataset_dir, config: TrainConfig, run_dir, init_lora=None, resume=True,
                 cache_dir=None, progress=None, device=None, compute_dtype=None, identity=None):
        self.model, self.encoders, self.config = model, encoders, config
        self.run_dir = os.path.abspath(run_dir)
        self.checkpoint_dir = os.path.join(self.run_dir, "checkpoints")
        self.rank, self.world = _dist()
        if config.batch % self.world:
            raise ValueError(f"batch: {config.batch} samples per micro-batch do not split over {self.world} processes")
        self.progress = progress
        self.pairs = load_pairs(dataset_dir, config.split)
        self.cache = FeatureCache(cache_dir or os.path.join(self.run_dir, "feature_cache"), encoders.fingerprint)
        self.data = EncodedPairs(self.pairs, encoders, self.cache)
        self.sampler = ConditionSampler(config.ratio, config.seed)
        self.order = DataOrder(len(self.pairs), config.seed)
        param = next(model.parameters())
        self.device = param.device if device is None else torch.device(device)
        self.dtype = compute_dtype_for(next(model.blocks.parameters()).dtype, compute_dtype)  # the blocks' dtype
        self.shard = config.shards_base(self.world)
        if config.shard_base != "none" and not self.shard:
            log.warning("DreamStyle training: shard_base %r needs several processes (torchrun); this one process "
                        "trains on the whole, unsharded base", config.shard_base)
        self.swapped = swapped_blocks(model, config.block_swap)
        self._check_clip_width()
        self.identity = dict(identity or {}, dataset=dataset_fingerprint(self.pairs))
        self.init_lora = init_lora
        self.step, self.history = 0, []
        self.init_sha = None
        if config.stage == "SFT" and not init_lora:
            log.warning("DreamStyle SFT without init_lora: the paper starts SFT from the CT LoRA")
        resume_dir = latest_checkpoint(self.checkpoint_dir) if resume else None
        if resume_dir:
            self._resume(resume_dir)
        else:
            if init_lora:
                self.loras = loras_from_file(init_lora, model)
                self.init_sha = read_safetensors(init_lora, what="init_lora")[1].get("sha256", "")
                ranks = {lora.rank for lora in self.loras.values()}
                if ranks != {config.rank}:
                    log.info("init_lora has rank %s; training continues at that rank (not %d)", ranks, config.rank)
            else:
                self.loras = new_loras(model, config.rank, config.alpha, config.seed)
            self.optimizer = None
        for lora in self.loras.values():
            lora.to(self.device, torch.float32)
        self.params = [p for name in sorted(self.loras) for p in self.loras[name].parameters()]
        if self.optimizer is None:
            self.optimizer = self._new_optimizer()
        if self._pending_optimizer is not None:
            load_optimizer(self.optimizer, *self._pending_optimizer)
            self._pending_optimizer = None

    _pending_optimizer = None
    optimizer = None

    def _check_clip_width(self):
        """Refuse CLIP-vision features (cached or fresh) that the model's image branch cannot take."""
        emb = getattr(self.model, "img_emb", None)
        if emb is None or self.encoders.clip_vision_encode is None:
            return
        i = next((i for i in range(len(self.pairs)) if self.data.num_refs(i)), None)
        weight = next((p for p in emb.parameters() if p.ndim == 2), None)
        if i is None or weight is None:
            return
        width = self.data.clip_features(i, 0).shape[-1]
        if width != weight.shape[1]:
            raise ValueError(f"clip_vision: its features are {width} wide, the model's image branch takes "
                             f"{weight.shape[1]} (Wan2.1-I2V was trained with CLIP ViT-H/14, clip_vision_h; "
                             f"give the encoder the inference workflows use)")

    def _new_optimizer(self):
        """AdamW over the LoRA, or with optimizer_offload over CPU copies of it (self.cpu_params): the step
        runs on the CPU on the device's gradients and the result is copied back."""
        params = self.params
        if self.config.optimizer_offload:
            with offload_allocation():
                self.cpu_params = [p.detach().to("cpu", copy=True).requires_grad_() for p in self.params]
            params = self.cpu_params
        return torch.optim.AdamW(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def _optimizer_step(self):
        if not self.config.optimizer_offload:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            return
        with offload_allocation():
            for p, q in zip(self.params, self.cpu_params):
                q.grad = p.grad.to("cpu", copy=True)
                p.grad = None
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for p, q in zip(self.params, self.cpu_params):
                p.copy_(q, non_blocking=True)

    def _resume(self, directory):
        lora_t, lora_meta, state_t, state, groups = read_checkpoint(directory)
        saved = state.get("config", {})
        mine = self.config.to_dict()
        changed = [f"{k}: checkpoint {saved.get(k)!r}, now {mine[k]!r}" for k in TRAJECTORY_FIELDS
                   if k in saved and saved[k] != mine[k]]
        saved_identity = state.get("identity")
        if saved_identity is None:
            log.warning("resume: %s predates job identities (dataset, base); only its settings are checked", directory)
        changed += [f"{k}: checkpoint {saved_identity.get(k)!r}, now {v!r}" for k, v in sorted(self.identity.items())
                    if saved_identity is not None and saved_identity.get(k) != v]
        init_sha = read_safetensors(self.init_lora, what="init_lora")[1].get("sha256", "") if self.init_lora else None
        if (state.get("init_lora_sha256") or None) != (init_sha or None):
            changed.append(f"init_lora: checkpoint started from sha256 {state.get('init_lora_sha256')!r}, "
                           f"now {init_sha!r}")
        if changed:
            raise CheckpointError(f"resume: the checkpoint in {directory} was trained with other settings "
                                  f"({'; '.join(changed)}); use a new run folder or the same settings")
        shapes = {n: tuple(self.model.get_submodule(n).weight.shape) for n in adapted_layer_names(self.model)}
        parsed, _ = parse_lora(lora_t, lora_meta, shapes, what=f"resume checkpoint {directory}")
        self.loras = {n: TokenLoRA.from_weights(d, u, a) for n, (d, u, a) in parsed.items()}
        self.step, self.history = state["step"], state["history"]
        self.init_sha = state.get("init_lora_sha256")
        if state.get("data_position") != self._position(self.step):
            raise CheckpointError(f"resume: {directory} records data position {state.get('data_position')} "
                                  f"at step {self.step}, expected {self._position(self.step)}")
        torch.set_rng_state(state_t["rng.torch"])
        self._pending_optimizer = (state_t, groups)
        log.info("DreamStyle training: resumed %s at step %d", directory, self.step)

    def _position(self, step):
        """Data position: the index of the first sample of optimizer step STEP."""
        return step * self.config.accumulation * self.config.batch

    def metadata(self, **extra):
        c = self.config
        return final_lora_metadata(
            next(iter(self.loras.values())).rank, stage=c.stage, steps=self.step, lr=c.lr,
            batch=c.batch * c.accumulation, ratio=":".join(f"{r:g}" for r in c.ratio), seed=c.seed,
            token_specific=c.token_specific, init_lora_sha256=self.init_sha or "", trainer="unistyle.dreamstyle",
            **extra)

    def lora_tensors(self):
        """The file tensors of the current LoRA (a plain LoRA writes its one up matrix for every type)."""
        if self.config.token_specific:
            return token_lora_tensors(self.loras)
        tied = {n: TokenLoRA.from_weights(l.down.detach(), l.up.detach()[VIDEO].expand_as(l.up), l.alpha)
                for n, l in self.loras.items()}
        return token_lora_tensors(tied)

    # ---- one micro-batch ----------------------------------------------------------------------------
    def micro_batch(self, step, micro):
        """(condition, layout, model input, target, t, context, clip_fea) of this process's share."""
        c = self.config
        condition = self.sampler.choose(step, micro)
        local = c.batch // self.world
        first = (step * c.accumulation + micro) * c.batch + self.rank * local
        latent_in = self.encoders.latent_in
        z_raw, z_sty, z_first, z_style, contexts, clips, sigmas, noises, ids = [], [], [], [], [], [], [], [], []
        record = None
        for g in range(first, first + local):
            i = self.order.pair(g)
            pair = self.pairs[i]
            if record is not None and (pair.record["raw"]["frames"], pair.record["raw"]["height"],
                                       pair.record["raw"]["width"]) != record:
                raise ValueError(f"dataset_dir: pairs {ids[0]} and {pair.id} differ in frame count or size; "
                                 f"batch > 1 needs pairs of one size (or use batch 1 with accumulation)")
            record = (pair.record["raw"]["frames"], pair.record["raw"]["height"], pair.record["raw"]["width"])
            ids.append(pair.id)
            gen = sample_generator(c.seed, g)
            sigmas.append(sample_sigma(gen, c.shift))
            z_raw.append(latent_in(self.data.video(i, "raw")[None]))
            z_sty.append(latent_in(self.data.video(i, "stylized")[None]))
            if condition == "text":
                contexts.append(self.data.text(pair.caption_sty))
            else:
                contexts.append(self.data.text(pair.caption_ns))
            if condition == "style_image":
                k = reference_choice(c.seed, g, self.data.num_refs(i))
                z_style.append(latent_in(self.data.style_image(i, k)[None]))
                clips.append(self.data.clip_features(i, k))
            if condition == "first_frame":
                z_first.append(latent_in(self.data.first_frame(i)[None]))
            noises.append(gen)
        layout = plan_layout(*record, first_frame=condition == "first_frame", style_image=condition == "style_image")
        z_raw, z_sty = torch.cat(z_raw), torch.cat(z_sty)
        if z_raw.shape[2] != layout.video:
            raise ValueError(f"vae: encoded {z_raw.shape[2]} latent frames for {record[0]} video frames, the Wan "
                             f"layout expects {layout.video} (a VAE with another temporal stride?)")
        latents = condition_latents(layout, z_raw, torch.cat(z_first) if z_first else None,
                                    torch.cat(z_style) if z_style else None)
        shape = latents.reference.shape[1:]
        noise = torch.stack([torch.randn(shape, generator=gen) for gen in noises])
        error = c.input_perturbation * torch.stack([torch.randn(shape, generator=gen) for gen in noises]) \
            if c.input_perturbation else None
        sigma = torch.stack(sigmas)
        x, target = training_pair(latents, z_sty, noise, sigma, error)
        clip_fea = None
        if clips and all(f is not None for f in clips):
            clip_fea = torch.stack(clips)
        dev = self.device
        return (condition, layout, x.to(dev, self.dtype), target.to(dev), timestep(sigma).to(dev, self.dtype),
                pad_contexts(contexts).to(dev, self.dtype),
                None if clip_fea is None else clip_fea.to(dev, self.dtype))

    # ---- the loop -----------------------------------------------------------------------------------
    def run(self, output_path=None, step_context=contextlib.nullcontext):
        """Train to config.steps; STEP_CONTEXT() is entered around each optimizer step (a memory meter)."""
        c = self.config
        hooks = TokenLoRAHooks(self.loras)
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=c.precision == "bf16")
        with frozen(self.model), (sharded_base(self.model, self.device, offload=c.shard_base == "fsdp_offload")
                                  if self.shard else contextlib.nullcontext(self.model)) as base:
            module = _TrainModule(base, self.loras)
            ddp = None
            if self.world > 1:
                ddp = torch.nn.parallel.DistributedDataParallel(module, broadcast_buffers=False)
            forward = ddp or module
            hooks.attach(base)
            try:
                with self._base_runner(base, c.gradient_checkpointing), torch.enable_grad():
                    for p in self.params:
                        p.requires_grad_(True)
                    while self.step < c.steps:
                        with step_context():
                            self._train_step(forward, ddp, hooks, autocast)
                        if self.rank == 0 and ((c.save_every and self.step % c.save_every == 0)
                                               or self.step == c.steps):
                            self.save()
                        if self.world > 1:
                            torch.distributed.barrier()
            finally:
                hooks.detach()
        path = None
        if output_path and self.rank == 0:
            write_safetensors_atomic(output_path, self.lora_tensors(), self.metadata())
            path = output_path
        return TrainResult(self.loras, self.history, self.step, path, self.checkpoint_dir, self.cache.hits,
                           self.cache.misses)

    def _train_step(self, forward, ddp, hooks, autocast):
        c = self.config
        total, conditions = 0.0, []
        for micro in range(c.accumulation):
            condition, layout, x, target, t, context, clip_fea = self.micro_batch(self.step, micro)
            conditions.append(condition)
            types = layout.frame_types() if c.token_specific else torch.full((layout.total,), VIDEO)
            sync = ddp.no_sync() if ddp is not None and micro < c.accumulation - 1 else contextlib.nullcontext()
            with sync, hooks.routing(types.to(self.device), tokens_per_frame(x.shape[3], x.shape[4])):
                with autocast:
                    prediction = forward(x, t, context, clip_fea)
                loss = flow_matching_loss(prediction, target, layout)
                (loss / c.accumulation).backward()
            total += float(loss.detach()) / c.accumulation
        if c.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm)
        self._optimizer_step()
        if self.world > 1:
            value = torch.tensor([total], dtype=torch.float64)
            torch.distributed.all_reduce(value)
            total = float(value) / self.world
        self.step += 1
        self.history.append({"step": self.step, "loss": total, "conditions": conditions})
        if self.progress:
            self.progress(self.step, c.steps, total)

    def _base_runner(self, base, checkpoint):
        """How the base runs for the duration: FSDP-sharded as it is, else streamed (block swap, fp8)."""
        if self.shard:
            return gradient_checkpointing(base, checkpoint)
        self.streamer = StreamedBase(base, self.device, self.dtype, checkpoint=checkpoint, swapped=self.swapped,
                                     offload_activations=self.config.offload_activations and checkpoint,
                                     granularity=self.config.checkpoint_granularity)
        return self.streamer.active()

    def evaluate(self, steps, micro=0):
        """Mean flow-matching loss, without gradients, on the micro-batches (step, MICRO) for STEPS: the
        same samples, conditions, noise and σ whenever it is called, so it measures the LoRA alone."""
        hooks = TokenLoRAHooks(self.loras)
        hooks.attach(self.model)
        losses = []
        try:
            with torch.no_grad(), self._base_runner(self.model, False):
                for step in steps:
                    condition, layout, x, target, t, context, clip_fea = self.micro_batch(step, micro)
                    types = layout.frame_types() if self.config.token_specific else torch.full((layout.total,), VIDEO)
                    with hooks.routing(types.to(self.device), tokens_per_frame(x.shape[3], x.shape[4])):
                        losses.append(float(flow_matching_loss(self.model(x, t, context, clip_fea=clip_fea),
                                                               target, layout)))
        finally:
            hooks.detach()
        return sum(losses) / len(losses)

    def save(self):
        state = {"config": self.config.to_dict(), "history": self.history, "data_position": self._position(self.step),
                 "init_lora_sha256": self.init_sha, "identity": self.identity}
        return save_checkpoint(self.checkpoint_dir, self.step, self.loras, self.optimizer, state,
                               self.metadata(), keep=self.config.keep_checkpoints)
