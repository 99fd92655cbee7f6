"""Resumable DreamStyle training checkpoints: the token LoRA plus the training state, written atomically.

    <run>/checkpoints/step_0000100/lora.safetensors    the token-LoRA file format (lora_file.py); loads in
                                                       DreamStyleTokenLoRALoader as it is
    <run>/checkpoints/step_0000100/state.safetensors   AdamW moments, torch RNG state; metadata: step,
                                                       data position, loss history, config, lora sha256
    <run>/checkpoints/latest.json                      {"step": 100, "dir": "step_0000100"}

Both files are written to a temporary name, fsynced and renamed (each with a sha256 of its tensors in
its metadata), and `latest.json` is replaced only after both are in place: a kill at any moment
leaves `latest.json` naming the last complete checkpoint. Reading verifies both checksums and that
the state belongs to that LoRA; a truncated or damaged file is refused with a CheckpointError that
names it.
"""
import json
import os
import shutil

import torch

from .lora_file import LoRAFileError, read_safetensors, token_lora_metadata, token_lora_tensors, write_safetensors_atomic

LATEST = "latest.json"


class CheckpointError(ValueError):
    pass


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def optimizer_tensors(optimizer):
    """AdamW state -> ({name: tensor}, param_groups as JSON-able list)."""
    sd = optimizer.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for k, v in state.items():
            tensors[f"optimizer.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, sd["param_groups"]


def load_optimizer(optimizer, tensors, param_groups):
    state = {}
    for name, v in tensors.items():
        if not name.startswith("optimizer."):
            continue
        _, idx, k = name.split(".", 2)
        state.setdefault(int(idx), {})[k] = v
    optimizer.load_state_dict({"state": state, "param_groups": param_groups})


def save_checkpoint(folder, step, loras, optimizer, state, lora_metadata, keep=2):
    """Write checkpoint STEP into FOLDER; STATE (JSON-able) goes in the state file's metadata."""
    name = f"step_{step:07d}"
    target = os.path.join(folder, name)
    os.makedirs(target, exist_ok=True)
    lora_path = os.path.join(target, "lora.safetensors")
    write_safetensors_atomic(lora_path, token_lora_tensors(loras), lora_metadata)
    lora_sha = read_safetensors(lora_path, what="checkpoint")[1]["sha256"]
    tensors, groups = optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    write_safetensors_atomic(os.path.join(target, "state.safetensors"), tensors,
                             {"state": json.dumps(dict(state, step=step)), "param_groups": json.dumps(groups),
                              "lora_sha256": lora_sha})
    _write_json_atomic(os.path.join(folder, LATEST), {"step": step, "dir": name})
    steps = sorted(d for d in os.listdir(folder) if d.startswith("step_") and d != name)
    for old in steps[:max(0, len(steps) - (keep - 1))]:
        shutil.rmtree(os.path.join(folder, old), ignore_errors=True)
    return lora_path


def latest_checkpoint(folder):
    """The directory of the last complete checkpoint in FOLDER, or None when there is none."""
    path = os.path.join(folder, LATEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            latest = json.load(f)
        return os.path.join(folder, latest["dir"])
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"resume: {path} is unreadable ({e}); delete the run folder to start over") from e


def read_checkpoint(directory):
    """(lora tensors, lora metadata, state tensors, state dict, param groups) of one checkpoint; a
    CheckpointError naming the file when either file is missing, truncated or damaged."""
    out = []
    for fname in ("lora.safetensors", "state.safetensors"):
        path = os.path.join(directory, fname)
        if not os.path.exists(path):
            raise CheckpointError(f"resume: checkpoint file {path} is missing")
        try:
            out.append(read_safetensors(path, what="resume checkpoint"))
        except LoRAFileError as e:
            raise CheckpointError(f"resume: checkpoint {path} is truncated or damaged and is refused ({e}); "
                                  f"delete {directory} to resume from the checkpoint before it") from e
    (lora, lora_meta), (state_tensors, state_meta) = out
    if state_meta.get("lora_sha256") != lora_meta.get("sha256"):
        raise CheckpointError(f"resume: {directory}: state.safetensors belongs to another lora.safetensors "
                              f"(sha256 mismatch); the checkpoint is refused")
    return lora, lora_meta, state_tensors, json.loads(state_meta["state"]), json.loads(state_meta["param_groups"])


def final_lora_metadata(rank, **extra):
    return token_lora_metadata(rank, **extra)
