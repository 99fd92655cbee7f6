import os

import pytest
import torch

from hicast.checkpoint import load_checkpoint, save_checkpoint
from hicast.module_files import load_module, save_module
from hicast.style_adapter import StyleAdapter
from hicast.style_encoder import StyleEncoder
from hicast.temporal_layers import TemporalLayers


def test_checkpoint_round_trip_and_damage_detection(tmp_path):
    path = str(tmp_path / "run" / "ckpt.pt")
    state = {"step": 3, "history": [{"loss": 1.5}], "w": torch.arange(4.0)}
    save_checkpoint(path, state)
    assert os.listdir(tmp_path / "run") == ["ckpt.pt"]  # no temp file left behind
    back = load_checkpoint(path)
    assert back["step"] == 3 and torch.equal(back["w"], state["w"])
    raw = bytearray(open(path, "rb").read())
    raw[-5] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_checkpoint(path)
    open(path, "wb").write(b"junk")
    with pytest.raises(ValueError, match="not a HiCAST training checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("module, kind", [(StyleAdapter([8, 16], hidden=(4, 4)), "style_adapter"),
                                          (StyleEncoder(16, 2, (4,), 8), "style_encoder"),
                                          (TemporalLayers([8, 16], heads=2), "temporal_layers")])
def test_module_file_round_trip(tmp_path, module, kind):
    for p in module.parameters():
        torch.nn.init.normal_(p)
    path = str(tmp_path / f"{kind}.safetensors")
    save_module(path, module, kind, map_type="edge")
    back, meta = load_module(path)
    assert type(back) is type(module) and meta["hicast_kind"] == kind and meta["map_type"] == "edge"
    for (k, v), (k2, v2) in zip(module.state_dict().items(), back.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)


def test_foreign_files_are_refused(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / "other.safetensors")
    save_file({"x": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a HiCAST module file"):
        load_module(path)
    with pytest.raises(ValueError, match="does not describe"):
        save_module(path, StyleEncoder(16, 2, (4,), 8), "style_adapter")
