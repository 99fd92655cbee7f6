"""A resumable training loop shared by the stage-2 and stage-3 trainers.

Each step draws its randomness from a generator seeded by (seed, step), so a run resumed from a
checkpoint takes exactly the steps an uninterrupted run would have taken.
"""
import os

import torch

from .checkpoint import load_checkpoint, save_checkpoint


def step_generator(seed, step):
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def run_resumable(step_fn, modules, optimizers, steps, checkpoint_path=None, save_every=50, progress=None, job=None):
    """Run step_fn(step) -> {name: float} for steps [start, STEPS); returns the whole loss history.

    MODULES / OPTIMIZERS: {name: nn.Module / Optimizer} saved in the checkpoint every SAVE_EVERY steps and
    at the end; an existing checkpoint at CHECKPOINT_PATH is resumed from when it belongs to the same JOB
    (a dict of the run's identity: seed, lr, steps, data fingerprint, config), else refused naming what differs.
    PROGRESS(done, total) is called after every step (ComfyUI's progress bar and interrupt check).
    """
    start, history = 0, []
    if checkpoint_path and os.path.exists(checkpoint_path):
        state = load_checkpoint(checkpoint_path, job)
        for name, m in modules.items():
            m.load_state_dict(state["modules"][name])
        for name, o in optimizers.items():
            o.load_state_dict(state["optimizers"][name])
        start, history = state["step"], list(state["history"])
    for step in range(start, steps):
        history.append({k: float(v) for k, v in step_fn(step).items()})
        done = step + 1
        if checkpoint_path and (done % save_every == 0 or done == steps):
            save_checkpoint(checkpoint_path, {
                "step": done, "history": history,
                "modules": {n: m.state_dict() for n, m in modules.items()},
                "optimizers": {n: o.state_dict() for n, o in optimizers.items()}}, job)
        if progress:
            progress(done, steps)
    return history
