"""The HiCAST file format: one safetensors file per trained module.

Tensors are the module's state_dict; the safetensors metadata holds
  hicast_kind   : "style_adapter" | "style_encoder" | "temporal_layers"
  hicast_config : JSON of the constructor arguments (e.g. {"channels": [320, 640, 1280, 1280], ...})
  map_type      : for adapters, the control map it was trained on ("edge", "segmentation", "depth", "pose")
Files are written to a temp name and os.replace'd.
"""
import json
import os

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


def load_module(path, device="cpu"):
    """-> (module, metadata). Refuses files without HiCAST metadata or whose tensors do not fit the config."""
    meta = read_metadata(path)
    kind = meta.get("hicast_kind")
    if kind not in KINDS:
        raise ValueError(f"{os.path.basename(path)}: not a HiCAST module file (expected safetensors metadata "
                         f"hicast_kind in {sorted(KINDS)}, got {kind!r})")
    module = KINDS[kind](**json.loads(meta["hicast_config"]))
    try:
        module.load_state_dict(load_file(path, device="cpu"), strict=True)
    except RuntimeError as e:
        raise ValueError(f"{os.path.basename(path)}: tensors do not match its hicast_config: {e}") from e
    return module.to(device).eval().requires_grad_(False), meta
