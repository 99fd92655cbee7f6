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


def test_cli_image_embeddings_train_the_alignment_head_too(tmp_path):
    from safetensors.torch import save_file
    torch.manual_seed(0)
    StyleMotif(SMALL).save(str(tmp_path / "base.safetensors"))
    def run(out, *extra):
        return main([str(tmp_path / "base.safetensors"), str(tmp_path / out), "--hash-text", "--dataset", "procedural",
                     "--clips", "20", "--frames", "20", "--stylization-steps", "2", "--alignment-steps", "3", *extra])
    g = torch.Generator().manual_seed(1)
    save_file({s: torch.randn(4, SMALL.embed_dim, generator=g) for s in ("old", "happy")}, str(tmp_path / "img.safetensors"))
    assert run("text.safetensors") == 0
    assert run("both.safetensors", "--image-embeds", str(tmp_path / "img.safetensors")) == 0
    text, both = (StyleMotif.load(str(tmp_path / f"{n}.safetensors")) for n in ("text", "both"))
    for k, v in text.style_encoder.state_dict().items():
        assert torch.equal(v, both.style_encoder.state_dict()[k]), k  # images reach the alignment head only
    assert not torch.equal(text.align.proj.weight, both.align.proj.weight)  # the image term moved the head
    save_file({"old": torch.randn(4, 7)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"image_embeds\['old'\]"):
        run("bad_out.safetensors", "--image-embeds", str(tmp_path / "bad.safetensors"))
