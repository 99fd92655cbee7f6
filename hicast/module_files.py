"""The HiCAST file format: one safetensors file per trained module.

Tensors are the module's state_dict; the safetensors metadata holds
  hicast_kind   : "style_adapter" | "style_encoder" | "temporal_layers"
  hicast_config : JSON of the constructor arguments (e.g. {"channels": [320, 640, 1280, 1280], ...})
  map_type      : for adapters, the control map it was trained on ("edge", "segmentation", "depth", "pose")
Files are written to a temp name and os.replace'd. Loading checks the config against sane limits (LIMITS) and
the shapes a module of that config would have (built on the meta device, no memory) against the tensors in
the file BEFORE building the real module, so bad metadata cannot make it allocate gigabytes.
"""
import inspect
import json
import os

import torch

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .style_adapter import StyleAdapter
from .style_encoder import StyleEncoder
from .temporal_layers import TemporalLayers

KINDS = {"style_adapter": StyleAdapter, "style_encoder": StyleEncoder, "temporal_layers": TemporalLayers}


def save_module(path, module, kind, **meta):
    if KINDS.get(kind) is not type(module):
        raise ValueError(f"kind: {kind!r} does not describe a {type(module).__name__}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    metadata = {"hicast_kind": kind, "hicast_config": json.dumps(module.config()), **{k: str(v) for k, v in meta.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, path)


def read_metadata(path):
    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}


# the largest value any integer in a hicast_config may take, and the longest list
LIMITS = {"channels": 4096, "hidden": 4096, "widths": 4096, "context_dim": 4096, "clip_dim": 4096, "tokens": 256,
          "in_channels": 16, "res_blocks": 8, "unshuffle": 16, "heads": 64, "size": 1024}
MAX_LEVELS = 8


def checked_config(kind, raw, name):
    """The constructor arguments of a KIND from its JSON metadata, refused when unknown or out of bounds."""
    try:
        cfg = json.loads(raw)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: hicast_config is not JSON ({e})") from e
    allowed = set(inspect.signature(KINDS[kind]).parameters)
    if not isinstance(cfg, dict) or set(cfg) - allowed:
        raise ValueError(f"{name}: hicast_config for a {kind} takes {sorted(allowed)}, got "
                         f"{sorted(cfg) if isinstance(cfg, dict) else type(cfg).__name__}")
    for key, value in cfg.items():
        if isinstance(value, str) or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        limit = LIMITS.get(key, 4096)
        if (isinstance(value, list) and not 0 < len(value) <= MAX_LEVELS) or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit for v in values):
            raise ValueError(f"{name}: hicast_config {key}={value!r} is out of bounds (integers 0..{limit}"
                             f"{f', at most {MAX_LEVELS} of them' if isinstance(value, list) else ''})")
    return cfg


def check_tensors_fit(module_on_meta, path, name):
    """Compare the state_dict a config implies with the file's tensor names and shapes (no tensor is read)."""
    want = {k: tuple(v.shape) for k, v in module_on_meta.state_dict().items()}
    with safe_open(path, framework="pt") as f:
        have = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = [f"{k} {have[k]} (config implies {want[k]})" for k in sorted(set(want) & set(have)) if have[k] != want[k]]
    if missing or extra or wrong:
        raise ValueError(f"{name}: tensors do not match its hicast_config: "
                         + "; ".join(filter(None, [missing and f"missing {missing[:3]}", extra and f"unexpected {extra[:3]}",
                                                   wrong and f"shape {wrong[:3]}"])))


def load_module(path, device="cpu"):
    """-> (module, metadata). Refuses files without HiCAST metadata or whose tensors do not fit the config."""
    name = os.path.basename(path)
    meta = read_metadata(path)
    kind = meta.get("hicast_kind")
    if kind not in KINDS:
        raise ValueError(f"{name}: not a HiCAST module file (expected safetensors metadata "
                         f"hicast_kind in {sorted(KINDS)}, got {kind!r})")
    cfg = checked_config(kind, meta.get("hicast_config"), name)
    try:
        with torch.device("meta"):
            check_tensors_fit(KINDS[kind](**cfg), path, name)
    except (TypeError, RuntimeError) as e:
        raise ValueError(f"{name}: hicast_config cannot describe a {kind} ({e})") from e
    module = KINDS[kind](**cfg)
    try:
        module.load_state_dict(load_file(path, device="cpu"), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{os.path.basename(path)}: tensors do not match its hicast_config: {e}") from e
    return module.to(device).eval().requires_grad_(False), meta
