"""How much device memory a DreamStyle training step needs, computed before launch, with a verdict.

    peak = base weights resident on the device
         + token LoRA: fp32 weights, gradients and the two AdamW moments (16 bytes a parameter; 8 with
           optimizer_offload, which keeps the moments and AdamW's copy of the LoRA in CPU memory)
         + activations autograd keeps for the backward pass (without checkpointing, fp8 bases also keep
           every block's bf16 weight copy)
         + the working set of the unit that runs: with checkpointing, its weight copies in flight
           (this block's and the prefetched next one's; training_block_swap.py), its recomputed
           activations and its backward; the image projection's cast copy and activations when larger
         + embeddings, head and loss tensors

Shapes: L tokens = batch x (latent frames + 1 condition frame) x ceil(H/16) x ceil(W/16) (Wan's VAE
stride 4 in time, 8 in space, then 2x2 patches); D, F = the model's width and FFN width; r = rank;
u = 4 / compute bytes (RMSNorm keeps its input in fp32: u = 2 in bf16, 1 in fp32). Per Wan block and
token, in compute-dtype elements, what autograd saves with the token LoRA (ComfyUI's WanAttentionBlock,
read off saved_tensors_hooks), and what each sub-layer's backward needs on top:

    sub-layer    saved (besides its input)          backward
    self_attn    (4 + 2u) D + 4 r                   (3 + 2u) D    q, k before their RMSNorm; the attention's
    cross_attn   (3 + u) D, + 2 D a context token   2 D           q, k, v and output (o's input); the LoRA's
                                                                  down-projections
    ffn          2 F + 2 r                          2 F + 2 D     hidden before and after GELU
    between      GLUE = 4 D: the norms, the self-attention's and the FFN's inputs

The attention is counted as a kernel that keeps O(L) (its output and logsumexp: pytorch SDPA, flash,
xformers, sage, what ComfyUI runs on a GPU); a kernel that materialises the heads x L x L probabilities
(ComfyUI's CPU default, sub-quadratic attention) needs far more, and is not planned for.

Without checkpointing autograd keeps every block's saves. Gradient checkpointing keeps each block's
input (L x D) and recomputes one block at a time in the backward pass: with granularity "block" its
recomputation keeps all the block saves, plus the largest sub-layer backward; with "sublayer"
(training_sublayers.py) it keeps GLUE + 1 D (the cross-attention's input too), and one sub-layer at a
time is recomputed once more with its own saves and backward. Everything else (embeddings, the head,
the loss) is counted from its tensors. Checked against the bytes measured during real steps
(tests/host/test_dreamstyle_training_memory.py, bench/dreamstyle_training.py: within 10 %).
"""
import math
from dataclasses import dataclass, field

from .training_sublayers import GRANULARITIES

ACT_CONTEXT = 2                  # x D elements per context token and block (cross-attention k, v)

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8_e4m3fn": 1, "fp8_e5m2": 1}
GB = 1e9
GLUE = 4                        # x D: the block's norms, and the inputs of its self-attention and FFN
SUBLAYER_INPUTS = 1             # x D: with sublayer checkpoints the cross-attention's input is kept too


def sublayer_elements(dim, ffn, rank, compute_bytes):
    """{sub-layer: (elements autograd saves per token besides the sub-layer's input, further elements its
    backward pass needs per token)} in one Wan block with the token LoRA, in the compute dtype."""
    up = 4 // compute_bytes     # RMSNorm keeps its input in fp32: 2 compute elements a value in bf16
    return {"self_attn": ((4 + 2 * up) * dim + 4 * rank, (3 + 2 * up) * dim),
            "cross_attn": ((3 + up) * dim, 2 * dim),
            "ffn": (2 * ffn + 2 * rank, 2 * ffn + 2 * dim)}


def saved_elements(dim, ffn, rank, compute_bytes):
    """Elements per token autograd saves in one Wan block (no checkpointing)."""
    return GLUE * dim + sum(saved for saved, _ in sublayer_elements(dim, ffn, rank, compute_bytes).values())


def working_elements(dim, ffn, rank, compute_bytes, granularity="block"):
    """Elements per token live while one checkpointed block is recomputed and runs its backward pass: block
    granularity keeps all the block saves, sublayer granularity what lies between its sub-layers and one
    sub-layer's own (training_sublayers.py)."""
    subs = sublayer_elements(dim, ffn, rank, compute_bytes).values()
    if granularity == "block":
        return saved_elements(dim, ffn, rank, compute_bytes) + max(back for _, back in subs)
    return (GLUE + SUBLAYER_INPUTS) * dim + max(saved + back for saved, back in subs)


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
    clip_dim: int = 0           # width of the CLIP-vision features the image projection takes (0: none)
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
                   clip_dim=shapes.get("img_emb.proj.0.weight", (0,))[0],
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
    finer: "MemoryPlan" = None  # the same step with sublayer checkpointing, when this one checkpoints blocks

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
        if self.finer is not None:
            lines.append(f"  with checkpoint_granularity sublayer (the attention layers recomputed once more): "
                         f"{self.finer.verdict() if self.budget is not None else f'{self.finer.peak / GB:.2f} GB'}")
        return "\n".join(lines)

    def to_dict(self):
        return {"terms_gb": {k: round(v / GB, 4) for k, v in self.terms.items()}, "peak_gb": round(self.peak / GB, 4),
                "budget_gb": None if self.budget is None else round(self.budget / GB, 4), "fits": self.fits,
                "settings": self.settings,
                "sublayer_peak_gb": None if self.finer is None else round(self.finer.peak / GB, 4)}


def plan(shape: WanShape, frames, height, width, rank=64, base_dtype="bf16", compute_dtype="bf16", batch=1,
         gradient_checkpointing=True, block_swap=0, prefetch=True, text_len=512, clip_len=257, budget=None,
         offload_activations=False, optimizer_offload=False, granularity="block"):
    """The MemoryPlan of one training step (see the module docstring); BUDGET: device bytes, for the verdict.
    A block-checkpointing plan carries the sublayer one as `finer` (what the finer granularity would need)."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity: expected one of {GRANULARITIES}, got {granularity!r}")
    if not 0 <= block_swap <= shape.blocks:
        raise ValueError(f"block_swap: expected 0..{shape.blocks}, got {block_swap}")
    sb, cb = DTYPE_BYTES[base_dtype], DTYPE_BYTES[compute_dtype]
    cast = sb == 1                            # fp8 storage computes on bf16 copies
    n = tokens(frames, height, width, batch)
    ctx = batch * (text_len + clip_len)
    d, f = shape.dim, shape.ffn
    block_copy = shape.block_params * (cb if cast else sb)
    ctx_act = ctx * ACT_CONTEXT * d                 # the cross-attention's keys and values of the context
    if gradient_checkpointing:
        kept = shape.blocks * n * d * cb        # each block's input; its activations are recomputed
        copies = (2 if prefetch else 1) * block_copy if (block_swap or cast) else 0
        working = copies + (n * working_elements(d, f, rank, cb, granularity) + ctx_act) * cb
        if offload_activations:                 # the inputs wait in CPU memory; one is back while its block runs
            working += kept / shape.blocks + ctx * d * cb
            kept = 0
    else:
        block_act = n * saved_elements(d, f, rank, cb) + ctx_act
        kept = shape.blocks * block_act * cb + (shape.blocks * block_copy if cast else 0)  # + fp8 casts autograd keeps
        working = n * max(back for _, back in sublayer_elements(d, f, rank, cb).values()) * cb
    lora = shape.lora_params(rank) * (8 if optimizer_offload else 16)
    # the image projection runs before the blocks, alone: its cast copy and activations (its input, the normed
    # and the projected CLIP features) and the embedded tokens are live before any block input is kept and
    # before the LoRA has gradients
    first = (shape.largest_other if cast else 0) * cb + (3 * batch * clip_len * shape.clip_dim + n * d) * cb
    working = max(working, first - kept - shape.lora_params(rank) * 4)
    # embeddings and head: latent input and condition (in_dim ch), target and prediction (16 ch, fp32),
    # the text context before (text_dim wide) and after the text embedding
    outside = (n * 4 * (shape.in_dim * cb + 2 * 16 * 4)) + batch * text_len * shape.text_dim * 4 + 3 * ctx * d * cb
    terms = {
        "base weights resident": shape.other_params * sb + (shape.blocks - block_swap) * shape.block_params * sb,
        "LoRA + grads + AdamW": lora,
        "activations kept": kept,
        "working set of one unit": working,
        "embeddings, head, loss": outside,
    }
    finer = None
    if gradient_checkpointing and granularity == "block":
        finer = plan(shape, frames, height, width, rank, base_dtype, compute_dtype, batch, gradient_checkpointing,
                     block_swap, prefetch, text_len, clip_len, budget, offload_activations, optimizer_offload,
                     granularity="sublayer")
    return MemoryPlan(terms, budget, dict(frames=frames, size=f"{height}x{width}", rank=rank, base=base_dtype,
                                          compute=compute_dtype, checkpointing=gradient_checkpointing,
                                          block_swap=block_swap, offload_activations=offload_activations,
                                          optimizer_offload=optimizer_offload, tokens=n,
                                          **({"granularity": granularity} if gradient_checkpointing else {})),
                      finer)
