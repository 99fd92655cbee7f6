"""Convert a released MLD checkpoint (PyTorch Lightning: {"state_dict": {...}}) into a StyleMotif model file.

    python -m stylemotif.import_mld SRC.ckpt DST.safetensors [--mean Mean.npy --std Std.npy] [--heads 4]

Takes the `vae.*` and `denoiser.*` tensors (the official names are this package's module names),
ignores the frozen CLIP `text_encoder.*`, the `t2m_*` evaluator networks and the denoiser's unused
`mem_pos` table. The file is read with torch.load(weights_only=True): a checkpoint that needs
arbitrary pickled objects is refused (re-save its state_dict alone with torch.save to import it).
Sizes are read from the tensor shapes (the head count is not visible in shapes: --heads, MLD uses 4).
--mean/--std: HumanML3D's Mean.npy/Std.npy (the 263-d normalisation MLD was trained with); without
them the model decodes normalised features. The style encoder starts as a copy of the VAE encoder
(StyleMotif's starting point); train the style branch with the StyleMotifTrain node (mode "style fine-tune").
"""
import argparse
import os
import sys

import numpy as np
import torch

from .humanml3d import Normalizer
from .model import StyleMotif, StyleMotifConfig

PARTS = ("vae.", "denoiser.")
IGNORED = ("text_encoder.", "t2m_", "denoiser.mem_pos.")


class CheckpointError(ValueError):
    """A checkpoint this importer cannot convert (the message says why)."""


def read_state_dict(path):
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception as e:  # torch raises the unpickler's error for anything beyond tensors and plain containers
        raise CheckpointError(f"{path}: cannot be read with weights_only=True ({str(e).splitlines()[0][:200]}); "
                              "refusing to unpickle it") from None
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: expected a Lightning checkpoint with a 'state_dict' of tensors")
    return sd


def config_from(sd, heads=4):
    """The architecture the tensor shapes describe."""
    try:
        token = sd["vae.global_motion_token"]
        n_in = len({k.split(".")[3] for k in sd if k.startswith("denoiser.encoder.input_blocks.")})
        return StyleMotifConfig(latent_dim=token.shape[1], latent_tokens=token.shape[0] // 2, layers=2 * n_in + 1, heads=heads,
                                ff_dim=sd["denoiser.encoder.middle_block.linear1.weight"].shape[0],
                                text_dim=sd["denoiser.time_embedding.linear_1.weight"].shape[1],
                                embed_dim=sd["denoiser.time_embedding.linear_1.weight"].shape[1]).check("checkpoint")
    except (KeyError, IndexError) as e:
        raise CheckpointError(f"not an MLD text-to-motion checkpoint (missing {e})") from None


def convert(sd, heads=4, normalizer=None):
    """A StyleMotif (CPU, fp32, eval) holding the checkpoint's VAE and denoiser."""
    config = config_from(sd, heads)
    model = StyleMotif(config)
    theirs = {k: v.float() for k, v in sd.items() if k.startswith(PARTS) and not k.startswith(IGNORED)}
    ours = {k: v for k, v in model.state_dict().items() if k.startswith(PARTS)}
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    wrong = sorted(k for k in set(ours) & set(theirs) if ours[k].shape != theirs[k].shape)
    if missing or extra or wrong:
        raise CheckpointError(f"checkpoint layout differs from MLD's: missing {missing[:5]}, unexpected {extra[:5]}, "
                           f"wrong shape {wrong[:5]}")
    bad = [k for k, v in theirs.items() if not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"checkpoint tensors contain NaN/inf: {bad[:5]}")
    model.load_state_dict(theirs, strict=False)
    model.style_encoder.init_from_vae(model.vae)
    if normalizer is not None:
        model.set_normalizer(normalizer)
    return model.eval()


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m stylemotif.import_mld", description=__doc__.split("\n\n")[0])
    p.add_argument("src", help="MLD checkpoint (.ckpt, Lightning format)")
    p.add_argument("dst", help="output .safetensors (e.g. ComfyUI/models/stylemotif/mld_humanml3d.safetensors)")
    p.add_argument("--mean", help="HumanML3D Mean.npy (263 values)")
    p.add_argument("--std", help="HumanML3D Std.npy (263 values)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (MLD HumanML3D: 4)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dst")
    a = p.parse_args(argv)
    try:
        if os.path.exists(a.dst) and not a.overwrite:
            raise CheckpointError(f"{a.dst} exists; choose another name or pass --overwrite")
        if (a.mean is None) != (a.std is None):
            raise CheckpointError("--mean and --std go together")
        norm = None if a.mean is None else Normalizer(np.load(a.mean, allow_pickle=False), np.load(a.std, allow_pickle=False))
        model = convert(read_state_dict(a.src), a.heads, norm)
        model.save(a.dst, {"source": f"MLD checkpoint {os.path.basename(a.src)}",
                           "normalisation": "HumanML3D Mean/Std" if norm else "identity (no --mean/--std given)"})
    except (CheckpointError, ValueError, OSError) as e:
        print(f"import_mld: {e}", file=sys.stderr)
        return 2
    if norm is None:
        print("import_mld: no --mean/--std given; the model decodes normalised features", file=sys.stderr)
    print(f"import_mld: wrote {a.dst} ({model.config})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
