"""The DreamStyle token-LoRA file format (safetensors), and reading plain LoRAs into it.

Tensors, for each adapted layer L (a Wan module path such as `blocks.0.self_attn.q`):
  L.lora_down.weight                [rank, in]    the shared W_down
  L.lora_up.first_frame.weight      [out, rank]   W_up^0
  L.lora_up.video.weight            [out, rank]   W_up^1
  L.lora_up.style_image.weight      [out, rank]   W_up^2
  L.alpha                           []            optional; scale = alpha / rank (default alpha = rank)
Metadata (all strings): format = "dreamstyle_token_lora", format_version = "1", rank, token_types =
"first_frame,video,style_image", and optionally sha256 (of the tensors, see tensors_sha256), which
readers verify, plus free-form training details.

A plain LoRA (one `lora_up` per layer; also `lora_A`/`lora_B` naming, `diffusion_model.` prefixes and
kohya-style `lora_unet_blocks_0_self_attn_q` names) loads with that one up used for every token type.
"""
import hashlib
import json
import math
import os
import struct

import torch

from .layout import TOKEN_TYPE_NAMES

FORMAT = "dreamstyle_token_lora"
FORMAT_VERSION = "1"
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "lora_unet_")


class LoRAFileError(ValueError):
    pass


def tensors_sha256(tensors):
    """A checksum over names, dtypes, shapes and bytes of every tensor, in sorted-name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def read_safetensors(path, what="lora_name"):
    """(tensors, metadata) of a safetensors file, or a LoRAFileError that names the input and the problem."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    if not path.endswith(".safetensors"):
        raise LoRAFileError(f"{what}: {os.path.basename(path)} is not a .safetensors file (other formats can run code "
                            "when loaded and are not read)")
    try:
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
        tensors = load_file(path)
    except (OSError, struct.error, json.JSONDecodeError, UnicodeDecodeError, SafetensorError, ValueError) as e:
        raise LoRAFileError(f"{what}: {path} is not a readable safetensors file (truncated or corrupt?): {e}") from e
    metadata = header.get("__metadata__") or {}
    if "sha256" in metadata and tensors_sha256(tensors) != metadata["sha256"]:
        raise LoRAFileError(f"{what}: {path} fails its checksum (sha256 in its metadata): the file is damaged")
    return tensors, metadata


def write_safetensors_atomic(path, tensors, metadata):
    """Write with a checksum in the metadata to a temporary name, fsync, then rename over `path`."""
    from safetensors.torch import save_file
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    metadata = dict(metadata, sha256=tensors_sha256(tensors))
    tmp = f"{path}.tmp{os.getpid()}"
    save_file(tensors, tmp, metadata={k: str(v) for k, v in metadata.items()})
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def token_lora_tensors(layers):
    """{layer: TokenLoRA} -> the file's tensors."""
    out = {}
    for name, lora in layers.items():
        out[f"{name}.lora_down.weight"] = lora.down
        for i, type_name in enumerate(TOKEN_TYPE_NAMES):
            out[f"{name}.lora_up.{type_name}.weight"] = lora.up[i]
        out[f"{name}.alpha"] = torch.tensor(lora.alpha)
    return out


def token_lora_metadata(rank, **extra):
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "rank": str(rank),
            "token_types": ",".join(TOKEN_TYPE_NAMES), **{k: str(v) for k, v in extra.items()}}


def _layer_and_part(key):
    for suffix, part in ((".lora_down.weight", "down"), (".lora_A.weight", "down"), (".lora_up.weight", "up"),
                         (".lora_B.weight", "up"), (".alpha", "alpha")):
        if key.endswith(suffix):
            return key[: -len(suffix)], part, None
    for i, type_name in enumerate(TOKEN_TYPE_NAMES):
        suffix = f".lora_up.{type_name}.weight"
        if key.endswith(suffix):
            return key[: -len(suffix)], "up", i
    return None, None, None


def _resolve(raw, layer_shapes, underscored):
    name = raw
    for p in _PREFIXES:
        if name.startswith(p):
            name = name[len(p):]
            break
    if name in layer_shapes:
        return name
    return underscored.get(name.replace(".", "_"))


def parse_lora(tensors, metadata, layer_shapes, what="lora_name"):
    """Match a LoRA's tensors to the model's adapted layers.

    layer_shapes: {layer name: (out_features, in_features)} of the model. Returns
    {layer: (down [r, in], ups [3, out, r], alpha)}. Raises LoRAFileError naming the layer on any
    shape mismatch, a rank outside 1..min(in, out) or unlike the metadata's, NaN/inf in a tensor or alpha,
    and when nothing matches the model at all; all before any module is built.
    """
    if metadata.get("format") == FORMAT and metadata.get("format_version") != FORMAT_VERSION:
        raise LoRAFileError(f"{what}: token-LoRA format_version {metadata.get('format_version')!r} is not supported "
                            f"(this pack reads {FORMAT_VERSION})")
    declared_rank = metadata.get("rank") if metadata.get("format") == FORMAT else None
    if declared_rank is not None:
        try:
            declared_rank = int(declared_rank)
        except ValueError:
            raise LoRAFileError(f"{what}: metadata rank {declared_rank!r} is not a whole number") from None
    underscored = {n.replace(".", "_"): n for n in layer_shapes}
    parts, unmatched = {}, set()
    for key, t in tensors.items():
        raw, part, type_index = _layer_and_part(key)
        if raw is None:
            unmatched.add(key)
            continue
        layer = _resolve(raw, layer_shapes, underscored)
        if layer is None:
            unmatched.add(raw)
            continue
        entry = parts.setdefault(layer, {"ups": {}})
        if part == "up":
            entry["ups"][type_index] = t
        else:
            entry[part] = t
    if not parts:
        sample = ", ".join(sorted(unmatched)[:3])
        raise LoRAFileError(f"{what}: the LoRA matches no layer of this model (its layers look like: {sample}; "
                            f"the model's look like: {next(iter(layer_shapes), '?')})")
    out = {}
    for layer, entry in sorted(parts.items()):
        if "down" not in entry or not entry["ups"]:
            raise LoRAFileError(f"{what}: layer {layer} has {'no lora_down' if 'down' not in entry else 'no lora_up'}")
        down, ups = entry["down"], entry["ups"]
        if None in ups:
            if len(ups) > 1:
                raise LoRAFileError(f"{what}: layer {layer} mixes a plain lora_up with token-specific ones")
            up_list = [ups[None]] * len(TOKEN_TYPE_NAMES)
        else:
            missing = [TOKEN_TYPE_NAMES[i] for i in range(len(TOKEN_TYPE_NAMES)) if i not in ups]
            if missing:
                raise LoRAFileError(f"{what}: layer {layer} lacks the up matrices for {', '.join(missing)}")
            up_list = [ups[i] for i in range(len(TOKEN_TYPE_NAMES))]
        out_f, in_f = layer_shapes[layer]
        rank = down.shape[0] if down.ndim == 2 else -1
        if down.ndim != 2 or down.shape[1] != in_f or any(tuple(u.shape) != (out_f, rank) for u in up_list):
            raise LoRAFileError(f"{what}: layer {layer} does not fit the model: the model's layer is "
                                f"{in_f} -> {out_f}, the LoRA has down {list(down.shape)} and up "
                                f"{list(up_list[0].shape)} (a LoRA for another model size?)")
        if not 1 <= rank <= min(in_f, out_f):
            raise LoRAFileError(f"{what}: layer {layer} has rank {rank}; expected 1..{min(in_f, out_f)} for a "
                                f"{in_f} -> {out_f} layer")
        if declared_rank is not None and rank != declared_rank:
            raise LoRAFileError(f"{what}: layer {layer} has rank {rank} but the file's metadata says rank "
                                f"{declared_rank}: the file is inconsistent")
        for part, t in (("lora_down", down), *((f"lora_up ({n})", u) for n, u in zip(TOKEN_TYPE_NAMES, up_list))):
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise LoRAFileError(f"{what}: layer {layer} {part} contains NaN/inf or is not a float tensor; "
                                    "the file is damaged or was saved from a diverged training run")
        if "alpha" in entry and entry["alpha"].numel() != 1:
            raise LoRAFileError(f"{what}: layer {layer} alpha has shape {list(entry['alpha'].shape)}; expected one number")
        alpha = float(entry["alpha"]) if "alpha" in entry else None
        if alpha is not None and not math.isfinite(alpha):
            raise LoRAFileError(f"{what}: layer {layer} has alpha {alpha}; expected a finite number")
        out[layer] = (down.float(), torch.stack(up_list).float(), alpha)
    return out, sorted(unmatched)
