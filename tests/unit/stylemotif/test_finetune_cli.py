"""scripts/train_stylemotif.py: the style fine-tune on an existing base, from the command line."""
import dataclasses

import pytest
import torch

from scripts.train_stylemotif import main
from stylemotif.model import StyleMotif
from stylemotif.pipeline import TOY

SMALL = dataclasses.replace(TOY, latent_dim=32, ff_dim=64, frames=20)


def test_cli_fine_tunes_the_style_branch_only_and_refuses_overwrite(tmp_path, capsys):
    torch.manual_seed(0)
    base = StyleMotif(SMALL)
    base.save(str(tmp_path / "base.safetensors"))
    args = [str(tmp_path / "base.safetensors"), str(tmp_path / "out.safetensors"), "--hash-text", "--dataset", "procedural",
            "--clips", "20", "--frames", "20", "--stylization-steps", "3", "--alignment-steps", "3"]
    assert main(args) == 0
    out = StyleMotif.load(str(tmp_path / "out.safetensors"))
    assert sorted(out.bank_labels) == ["angry", "happy", "neutral", "old", "proud"]
    for k, v in base.state_dict().items():
        if k.startswith(("vae.", "denoiser.")):
            assert torch.equal(v, out.state_dict()[k]), k  # the base is frozen
    assert not torch.equal(base.align.proj.weight, out.align.proj.weight)
    assert not (tmp_path / "out.partial").exists()
    assert main(args) == 2 and "exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(args[:2] + ["--dataset", "procedural"])  # a text space is required
