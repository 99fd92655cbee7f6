"""How much device memory a DreamStyle training step needs, computed before launch, with a verdict.

    peak = base weights resident on the device
         + token LoRA: fp32 weights, gradients and the two AdamW moments (16 bytes a parameter; 8 with
           optimizer_offload, which keeps the moments and AdamW's copy of the LoRA in CPU memory)
         + activations autograd keeps for the backward pass (without checkpointing, fp8 bases also keep
           every block's bf16 weight copy)
         + the working set of the unit that runs: with checkpointing, its weight copies in flight
           (this block's and the prefetched next one's; training_block_swap.py), its recomputed
           activations and its backward; a non-block unit's cast copy when that is larger
         + embeddings, head and loss tensors

Shapes: L tokens = batch x (latent frames + 1 condition frame) x ceil(H/16) x ceil(W/16) (Wan's VAE
stride 4 in time, 8 in space, then 2x2 patches); D, F = the model's width and FFN width; r = rank.
Per Wan block and token, autograd keeps ACT_PER_TOKEN = 26 D + 2 F + 6 r activation elements, plus
4 D per context token (text + 257 CLIP tokens) for the cross-attention keys and values: counted with
saved_tensors_hooks on ComfyUI's WanAttentionBlock with the token-LoRA hooks (the test
tests/unit/dreamstyle_training/test_memory_plan.py checks the count). Gradient checkpointing keeps
only each block's input (L x D) and recomputes one block at a time. The backward of one block needs
about BACKWARD_PER_TOKEN = 4 D + 2 F further elements per token (gradients of its input, hidden state
and attention). Everything else (embeddings, the head, the loss) is counted from its tensors.
"""
import math
from dataclasses import dataclass, field

ACT_CONTEXT = 4                  # x D elements per context token and block (cross-attention k, v, normed k)

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8_e4m3fn": 1, "fp8_e5m2": 1}
GB = 1e9


def act_per_token(dim, ffn, rank):
    """Activation elements autograd keeps per token in one Wan block with the token LoRA."""
    return 37 * dim + 2 * ffn + 6 * rank


def backward_per_token(dim, ffn):
    """Extra elements per token while one block runs its backward pass."""
    return 4 * dim + 2 * ffn


@dataclass
class WanShape:
    """What the plan needs to know of a Wan diffusion model."""
    blocks: int
    dim: int
    ffn: int
    block_params: int           # parameters of one block
    other_params: int           # embeddings, head, image projection
    largest_other: int = 0      # parameters of the largest non-block unit (cast alone, when it runs)
    in_dim: int = 36
    text_dim: int = 4096
    adapted: dict = field(default_factory=dict)   # {layer suffix: (in, out)} of the LoRA-adapted layers

    @classmethod
    def from_shapes(cls, shapes):
        """From {parameter name: shape} of a Wan state dict (a model's, or a file's header)."""
        numel = {k: math.prod(v) for k, v in shapes.items()}
        blocks = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
        block = {k[len("blocks.0."):]: v for k, v in shapes.items() if k.startswith("blocks.0.")}
        block_params = sum(math.prod(v) for v in block.values())
        adapted = {name: tuple(reversed(block[f"{name}.weight"]))
                   for name in ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "ffn.0", "ffn.2")}
        units = {}
        for k, v in numel.items():
            if not k.startswith("blocks."):
                units[k.split(".")[0]] = units.get(k.split(".")[0], 0) + v
        return cls(blocks=blocks, dim=block["self_attn.q.weight"][0], ffn=block["ffn.0.weight"][0],
                   largest_other=max(units.values(), default=0),
                   block_params=block_params, other_params=sum(numel.values()) - blocks * block_params,
                   in_dim=shapes["patch_embedding.weight"][1],
                   text_dim=next(v[1] for k, v in shapes.items() if k.startswith("text_embedding") and len(v) == 2),
                   adapted=adapted)

    @classmethod
    def from_model(cls, model):
        return cls.from_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()})

    def lora_params(self, rank, types=3):
        """Token-LoRA parameters: one down and TYPES up matrices per adapted layer of every block."""
        return self.blocks * sum(rank * i + types * o * rank for i, o in self.adapted.values())


def tokens(frames, height, width, batch=1):
    """Tokens of the largest DreamStyle layout: the video's latent frames + one condition frame."""
    latent_frames = (frames - 1) // 4 + 1
    return batch * (latent_frames + 1) * math.ceil(height / 16) * math.ceil(width / 16)


@dataclass
class MemoryPlan:
    terms: dict                 # name -> bytes
    budget: int = None          # device bytes available (None: unknown)
    settings: dict = field(default_factory=dict)

    @property
    def peak(self):
        return sum(self.terms.values())

    @property
    def fits(self):
        return None if self.budget is None else self.peak <= self.budget

    def verdict(self):
        if self.budget is None:
            return "no device budget known"
        word = "fits" if self.fits else "does NOT fit"
        return f"{word}: {self.peak / GB:.2f} GB needed, {self.budget / GB:.2f} GB available"

    def report(self):
        lines = [f"DreamStyle training memory plan ({', '.join(f'{k} {v}' for k, v in self.settings.items())})"]
        lines += [f"  {name:<28} {b / GB:8.3f} GB" for name, b in self.terms.items()]
        lines += [f"  {'peak':<28} {self.peak / GB:8.3f} GB", f"  {self.verdict()}"]
        return "\n".join(lines)

    def to_dict(self):
        return {"terms_gb": {k: round(v / GB, 4) for k, v in self.terms.items()}, "peak_gb": round(self.peak / GB, 4),
                "budget_gb": None if self.budget is None else round(self.budget / GB, 4), "fits": self.fits,
                "settings": self.settings}


def plan(shape: WanShape, frames, height, width, rank=64, base_dtype="bf16", compute_dtype="bf16", batch=1,
         gradient_checkpointing=True, block_swap=0, prefetch=True, text_len=512, clip_len=257, budget=None,
         offload_activations=False, optimizer_offload=False):
    """The MemoryPlan of one training step (see the module docstring); BUDGET: device bytes, for the verdict."""
    if not 0 <= block_swap <= shape.blocks:
        raise ValueError(f"block_swap: expected 0..{shape.blocks}, got {block_swap}")
    sb, cb = DTYPE_BYTES[base_dtype], DTYPE_BYTES[compute_dtype]
    cast = sb == 1                            # fp8 storage computes on bf16 copies
    n = tokens(frames, height, width, batch)
    ctx = batch * (text_len + clip_len)
    d, f = shape.dim, shape.ffn
    block_copy = shape.block_params * (cb if cast else sb)
    block_act = n * act_per_token(d, f, rank) + ctx * ACT_CONTEXT * d
    if gradient_checkpointing:
        kept = shape.blocks * n * d * cb        # each block's input; its activations are recomputed
        copies = (2 if prefetch else 1) * block_copy if (block_swap or cast) else 0
        working = copies + block_act * cb + n * backward_per_token(d, f) * cb
        if offload_activations:                 # the inputs wait in CPU memory; one is back while its block runs
            working += kept / shape.blocks + ctx * d * cb
            kept = 0
    else:
        kept = shape.blocks * block_act * cb + (shape.blocks * block_copy if cast else 0)  # + fp8 casts autograd keeps
        working = n * backward_per_token(d, f) * cb
    # a non-block unit (embeddings, image projection, head) runs alone: its cast copy is not live with a block's
    working = max(working, shape.largest_other * cb if cast else 0)
    # embeddings and head: latent input and condition (in_dim ch), target and prediction (16 ch, fp32),
    # the text context before (text_dim wide) and after the text embedding
    outside = (n * 4 * (shape.in_dim * cb + 2 * 16 * 4)) + batch * text_len * shape.text_dim * 4 + 3 * ctx * d * cb
    terms = {
        "base weights resident": shape.other_params * sb + (shape.blocks - block_swap) * shape.block_params * sb,
        "LoRA + grads + AdamW": shape.lora_params(rank) * (8 if optimizer_offload else 16),
        "activations kept": kept,
        "working set of one unit": working,
        "embeddings, head, loss": outside,
    }
    return MemoryPlan(terms, budget, dict(frames=frames, size=f"{height}x{width}", rank=rank, base=base_dtype,
                                          compute=compute_dtype, checkpointing=gradient_checkpointing,
                                          block_swap=block_swap, offload_activations=offload_activations,
                                          optimizer_offload=optimizer_offload, tokens=n))
