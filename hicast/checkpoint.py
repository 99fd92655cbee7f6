"""Resume state of the HiCAST trainers: safetensors + JSON, never pickle.

A state is a tree of dicts/lists holding tensors and JSON values (e.g. module and optimizer state_dicts).
Each tensor is stored in the safetensors file under its tree path and replaced in the tree by
{"__tensor__": path}; dicts become {"__dict__": [[key, value], ...]} so integer keys (optimizer state)
survive JSON. The tree goes in the file's metadata ("hicast_resume"), next to the job identity
("hicast_job": seed, learning rate, steps, data fingerprint, config ...) and a SHA-256 of the tensors' bytes
("hicast_sha256", so a damaged file is refused, not resumed). Files are written to a temp name
and os.replace'd, so a crash never leaves a half-written state under the real name.
"""
import hashlib
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

TENSOR, DICT = "__tensor__", "__dict__"


def _encode(obj, path, tensors):
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().clone().contiguous()
        return {TENSOR: path}
    if isinstance(obj, dict):
        return {DICT: [[k, _encode(v, f"{path}/{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"resume state: cannot store a {type(obj).__name__} at {path}")


def _decode(obj, tensors):
    if isinstance(obj, dict):
        if TENSOR in obj:
            return tensors[obj[TENSOR]]
        return {k: _decode(v, tensors) for k, v in obj[DICT]}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _digest(tensors):
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k]
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(path, state, job=None):
    tensors = {}
    tree = _encode(state, "", tensors)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    save_file(tensors, tmp, metadata={"hicast_resume": json.dumps(tree), "hicast_job": json.dumps(job or {}),
                                      "hicast_sha256": _digest(tensors)})
    os.replace(tmp, path)


def job_differences(saved, job):
    """'name: file value != this run's value' for every job setting that differs."""
    return [f"{k}: {saved.get(k)!r} in the file, {job.get(k)!r} now"
            for k in sorted(set(saved) | set(job)) if saved.get(k) != job.get(k)]


def load_checkpoint(path, job=None):
    """Read a resume state; a clear error when the file is not one, is damaged, or belongs to another job."""
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own error types for foreign or truncated files
        raise ValueError(f"resume state {os.path.basename(path)}: not a readable HiCAST resume file ({e}); "
                         "delete it to restart training") from e
    if "hicast_resume" not in meta:
        raise ValueError(f"resume state {os.path.basename(path)}: not a HiCAST resume file; delete it to restart")
    if meta.get("hicast_sha256") != _digest(tensors):
        raise ValueError(f"resume state {os.path.basename(path)}: checksum mismatch, the file is damaged; delete it "
                         "to restart training")
    if job is not None:
        diff = job_differences(json.loads(meta.get("hicast_job", "{}")), job)
        if diff:
            raise ValueError(f"resume state {os.path.basename(path)} belongs to a different training job ("
                             + "; ".join(diff) + "): use the same settings to resume, or another output name / "
                             "delete the file to start over")
    try:
        return _decode(json.loads(meta["hicast_resume"]), tensors)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"resume state {os.path.basename(path)}: damaged ({e}); delete it to restart") from e


def fingerprint(*tensors):
    """A short SHA-256 of tensors' shapes and values: the data identity a resume is checked against."""
    h = hashlib.sha256()
    for t in tensors:
        if t is None:
            h.update(b"none|")
            continue
        t = t.detach().float().cpu().contiguous()
        h.update(f"{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
