import os

import pytest
import torch
from safetensors.torch import save_file

from dreamstyle.lora_file import (LoRAFileError, parse_lora, read_safetensors, token_lora_metadata,
                                  token_lora_tensors, write_safetensors_atomic)
from dreamstyle.token_lora import TokenLoRA

SHAPES = {"blocks.0.self_attn.q": (8, 8), "blocks.0.ffn.0": (16, 8), "blocks.0.ffn.2": (8, 16)}


def token_loras(rank=2, seed=0):
    torch.manual_seed(seed)
    out = {}
    for name, (o, i) in SHAPES.items():
        lora = TokenLoRA(i, o, rank, alpha=1.0)
        torch.nn.init.normal_(lora.up)
        out[name] = lora
    return out


def test_token_lora_file_round_trips(tmp_path):
    layers = token_loras()
    path = str(tmp_path / "a.safetensors")
    write_safetensors_atomic(path, token_lora_tensors(layers), token_lora_metadata(2, stage="CT", step=10))
    tensors, meta = read_safetensors(path)
    assert meta["format"] == "dreamstyle_token_lora" and meta["rank"] == "2" and meta["stage"] == "CT"
    parsed, unmatched = parse_lora(tensors, meta, SHAPES)
    assert unmatched == [] and set(parsed) == set(SHAPES)
    down, ups, alpha = parsed["blocks.0.ffn.0"]
    assert torch.equal(down, layers["blocks.0.ffn.0"].down.detach()) and torch.equal(ups, layers["blocks.0.ffn.0"].up.detach())
    assert alpha == 1.0
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


@pytest.mark.parametrize("style", ["comfy", "kohya", "peft"])
def test_plain_lora_uses_its_up_for_every_token_type(tmp_path, style):
    down, up = torch.randn(2, 8), torch.randn(8, 2)
    key = {"comfy": "diffusion_model.blocks.0.self_attn.q", "kohya": "lora_unet_blocks_0_self_attn_q",
           "peft": "transformer.blocks.0.self_attn.q"}[style]
    names = ("lora_A", "lora_B") if style == "peft" else ("lora_down", "lora_up")
    path = str(tmp_path / "plain.safetensors")
    save_file({f"{key}.{names[0]}.weight": down, f"{key}.{names[1]}.weight": up}, path)
    parsed, _ = parse_lora(*read_safetensors(path), SHAPES)
    d, ups, alpha = parsed["blocks.0.self_attn.q"]
    assert torch.equal(d, down) and all(torch.equal(u, up) for u in ups) and alpha is None


def test_shape_mismatch_names_the_layer(tmp_path):
    path = str(tmp_path / "big.safetensors")
    save_file({"blocks.0.ffn.0.lora_down.weight": torch.randn(2, 1536), "blocks.0.ffn.0.lora_up.weight": torch.randn(16, 2)}, path)
    with pytest.raises(LoRAFileError, match=r"layer blocks\.0\.ffn\.0 does not fit the model.*8 -> 16"):
        parse_lora(*read_safetensors(path), SHAPES)


def test_lora_for_another_model_matches_nothing(tmp_path):
    path = str(tmp_path / "sdxl.safetensors")
    save_file({"lora_unet_down_blocks_0_attn1_to_q.lora_down.weight": torch.randn(2, 8),
               "lora_unet_down_blocks_0_attn1_to_q.lora_up.weight": torch.randn(8, 2)}, path)
    with pytest.raises(LoRAFileError, match="matches no layer of this model"):
        parse_lora(*read_safetensors(path), SHAPES)


def test_non_safetensors_truncated_and_damaged_files_are_refused(tmp_path):
    pt = tmp_path / "x.pt"
    pt.write_bytes(b"\x80\x04junk")
    with pytest.raises(LoRAFileError, match="not a .safetensors file"):
        read_safetensors(str(pt))
    path = str(tmp_path / "t.safetensors")
    write_safetensors_atomic(path, token_lora_tensors(token_loras()), token_lora_metadata(2))
    data = open(path, "rb").read()
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(data[: len(data) - 40])
    with pytest.raises(LoRAFileError, match="truncated or corrupt"):
        read_safetensors(str(trunc))
    flipped = bytearray(data)
    flipped[-1] ^= 0xFF  # same size, one tensor byte changed
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(LoRAFileError, match="fails its checksum"):
        read_safetensors(str(bad))


def test_missing_token_up_is_reported(tmp_path):
    t = token_lora_tensors(token_loras())
    del t["blocks.0.ffn.2.lora_up.style_image.weight"]
    with pytest.raises(LoRAFileError, match=r"blocks\.0\.ffn\.2 lacks the up matrices for style_image"):
        parse_lora(t, token_lora_metadata(2), SHAPES)
