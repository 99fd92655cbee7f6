"""Atomic, checksummed training checkpoints (resume state) for the HiCAST trainers.

The payload is torch.save'd to memory, its SHA-256 recorded in the header line, and the whole file written
to a temp name then os.replace'd, so a crash never leaves a half-written checkpoint under the real name.
"""
import hashlib
import io
import os

import torch

MAGIC = b"HICAST-CKPT sha256="


def save_checkpoint(path, state):
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n"
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(header + payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """Read and verify a checkpoint; a clear error when the file is not one or its checksum fails."""
    with open(path, "rb") as f:
        header = f.readline()
        payload = f.read()
    if not header.startswith(MAGIC):
        raise ValueError(f"checkpoint {path}: not a HiCAST training checkpoint")
    want = header[len(MAGIC):].strip().decode()
    got = hashlib.sha256(payload).hexdigest()
    if got != want:
        raise ValueError(f"checkpoint {path}: checksum mismatch (file says {want[:12]}…, content is {got[:12]}…); "
                         "the file is damaged, delete it to restart training")
    return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
