import os

import pytest
import torch

from hicast.checkpoint import load_checkpoint, save_checkpoint
from hicast.module_files import load_module, save_module
from hicast.style_adapter import StyleAdapter
from hicast.style_encoder import StyleEncoder
from hicast.temporal_layers import TemporalLayers


def test_checkpoint_round_trip_and_damage_detection(tmp_path):
    path = str(tmp_path / "run" / "a.hicast_resume")
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1, betas=(0.5, 0.9))
    opt.param_groups[0]["params"][0].grad = torch.ones(3)
    opt.step()
    state = {"step": 3, "history": [{"loss": 1.5}], "w": torch.arange(4.0), "opt": opt.state_dict()}
    save_checkpoint(path, state, job={"seed": 0})
    assert os.listdir(tmp_path / "run") == ["a.hicast_resume"]  # no temp file left behind
    back = load_checkpoint(path, {"seed": 0})
    assert back["step"] == 3 and torch.equal(back["w"], state["w"]) and back["history"] == [{"loss": 1.5}]
    again = torch.optim.AdamW([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    again.load_state_dict(back["opt"])  # integer state keys and param groups survive the JSON round trip
    assert torch.equal(again.state[again.param_groups[0]["params"][0]]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match=r"different training job \(seed: 0 in the file, 1 now\)"):
        load_checkpoint(path, {"seed": 1})
    raw = bytearray(open(path, "rb").read())
    raw[-5] ^= 0xFF
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_checkpoint(path)
    open(path, "wb").write(b"junk")
    with pytest.raises(ValueError, match="not a readable HiCAST resume file"):
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


def _with_config(path, out, **change):
    import json
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    with safe_open(path, framework="pt") as f:
        meta = dict(f.metadata())
    meta["hicast_config"] = json.dumps({**json.loads(meta["hicast_config"]), **change})
    save_file(load_file(path), out, metadata=meta)
    return out


@pytest.mark.parametrize("change, message", [
    ({"channels": [8, 1 << 20]}, "out of bounds"),                    # a 1.2 GB module before: refused from the numbers
    ({"channels": [8, 4096]}, r"tensors do not match its hicast_config: .*shape"),  # in bounds, but not this file
    ({"eval": 1}, "takes"),
])
def test_metadata_is_checked_before_any_module_is_built(tmp_path, monkeypatch, change, message):
    path = str(tmp_path / "a.safetensors")
    save_module(path, StyleAdapter([8, 16], hidden=(4, 4)), "style_adapter", map_type="edge")
    import functools
    built, real_init = [], StyleAdapter.__init__

    @functools.wraps(real_init)
    def counting_init(self, *a, **k):
        built.append(torch.empty(0).device.type)  # "meta" inside the shape check, "cpu" for a real module
        real_init(self, *a, **k)
    monkeypatch.setattr(StyleAdapter, "__init__", counting_init)
    with pytest.raises(ValueError, match=message):
        load_module(_with_config(path, str(tmp_path / "bad.safetensors"), **change))
    assert "cpu" not in built  # no real (non-meta) module was allocated
