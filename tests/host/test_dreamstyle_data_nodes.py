"""DreamStyle paired-data nodes in the real ComfyUI (in process, CPU), and the tiny Fun-control fixture."""
import os

import numpy as np
import pytest
import torch

from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_reader import iter_pairs
from dreamstyle.synthetic_benchmark import synthetic_pairs


@pytest.fixture(scope="module")
def data_nodes(comfy, unistyle):
    from unistyle_pack.nodes import dreamstyle_data
    return dreamstyle_data


@pytest.fixture(scope="module")
def pairs():
    return list(synthetic_pairs(scenes=2, styles=["ink", "thermal"], frames=5, refs=2, seed=2))


def image(frames):
    return torch.from_numpy(np.asarray(frames)).float() / 255


def test_nodes_are_listed_with_tooltips_in_the_data_category(data_nodes):
    for node in data_nodes.NODES:
        schema = node.define_schema()
        assert schema.category == "UniStyle/DreamStyle/Data"
        assert all(i.tooltip for i in schema.inputs), node.__name__


def test_strip_caption_node(data_nodes):
    out = data_nodes.DreamStyleStripStyleCaption.execute(
        "A watercolor painting of a fox in the snow, muted zorblax tones", "zorblax").result
    assert out == ("A fox in the snow", "A watercolor painting of; muted zorblax tones")


def test_filter_passes_a_true_pair_and_names_the_failed_score(data_nodes, pairs):
    ink, thermal = pairs[0], pairs[1]
    ok = data_nodes.DreamStylePairFilter.execute(image(ink.raw), image(ink.stylized), image(ink.refs), 0.7, 0.2, 8).result
    assert ok[0] is True and ok[1].startswith("passed") and ok[2] > 0.7 and ok[3] > 0.2
    wrong = data_nodes.DreamStylePairFilter.execute(image(ink.raw), image(ink.stylized), image(thermal.refs),
                                                    ok[2] - 1e-3, 0.2, 8).result
    assert wrong[0] is False and "style score" in wrong[1] and wrong[2] < ok[2]
    with pytest.raises(ValueError, match="stylized_video: expected the raw video's shape"):
        data_nodes.DreamStylePairFilter.execute(image(ink.raw), image(ink.stylized[:3]), image(ink.refs), 0.5, 0.2, 8)


def test_filter_uses_a_clip_vision_embedder_when_given(data_nodes, pairs):
    class FakeClipVision:  # stands for a stock CLIP_VISION: encode_image(IMAGE) -> output with image_embeds
        calls = 0

        def encode_image(self, pixels):
            FakeClipVision.calls += 1
            out = type("Out", (), {})()
            out.image_embeds = pixels.mean((1, 2))
            return out

    p = pairs[0]
    got = data_nodes.DreamStylePairFilter.execute(image(p.raw), image(p.stylized), image(p.refs), 0.0, -1.0, 8,
                                                  clip_vision=FakeClipVision()).result
    v, r = (np.asarray(x, np.float64).mean((0, 1, 2)) / 255 for x in (p.stylized, p.refs))
    assert FakeClipVision.calls == 2 and got[2] == pytest.approx(v @ r / np.linalg.norm(v) / np.linalg.norm(r), abs=1e-5)


def test_save_pair_writes_skips_and_rejects(data_nodes, pairs, tmp_path):
    p = pairs[0]
    args = dict(dataset_dir=str(tmp_path / "ds"), raw_video=image(p.raw), stylized_video=image(p.stylized),
                style_refs=image(p.refs), caption_ns=p.caption_ns, caption_sty=p.caption_sty, passed=True,
                reason="passed: test", pair_id="", split="train", fps=16.0)
    first = data_nodes.DreamStyleSavePair.execute(**args, control_video=image(p.raw), style_score=0.9, content_score=0.5)
    pid, status = first.result
    assert status == "written" and pid.startswith("pair-")
    assert data_nodes.DreamStyleSavePair.execute(**args).result == (pid, "skipped: already in the dataset")
    rejected = data_nodes.DreamStyleSavePair.execute(**{**args, "pair_id": "other", "passed": False,
                                                         "reason": "rejected: style score 0.1 < min_style 0.7"})
    assert rejected.result == ("other", "not written: rejected: style score 0.1 < min_style 0.7")
    report = check_dataset(tmp_path / "ds")
    assert report.ok and report.pairs == 1
    pair = next(iter_pairs(tmp_path / "ds"))
    np.testing.assert_array_equal(pair.load_raw(), p.raw)  # uint8 -> IMAGE -> uint8 is exact
    np.testing.assert_array_equal(pair.load_control(), p.raw)
    assert pair.record["scores"] == {"style": 0.9, "content": 0.5}


def test_check_node_reports_problems_with_line_and_path(data_nodes, pairs, tmp_path):
    p = pairs[1]
    data_nodes.DreamStyleSavePair.execute(str(tmp_path), image(p.raw), image(p.stylized), image(p.refs), p.caption_ns,
                                          p.caption_sty, True, "", "a", "train", 16.0)
    os.remove(tmp_path / "pairs" / "a" / "ref_01.png")
    text, valid, errors = data_nodes.DreamStyleCheckDataset.execute(str(tmp_path), True).result
    assert (valid, errors) == (0, 1)
    assert "manifest line 1" in text and os.path.join("pairs", "a", "ref_01.png") in text and "missing file" in text


def test_tiny_fun_control_model_is_detected_and_runs_with_the_stock_node(comfy, tiny_models):
    import comfy.sd
    import comfy.utils
    import nodes
    from comfy_extras.nodes_wan import WanFunControlToVideo
    model = comfy.sd.load_diffusion_model(os.path.join(tiny_models, "diffusion_models", "tiny_wan21_fun_control.safetensors"))
    assert type(model.model.model_config).__name__ == "WAN21_FunControl2V"
    assert model.model.diffusion_model.patch_embedding.weight.shape[1] == 48
    sd, meta = comfy.utils.load_torch_file(os.path.join(tiny_models, "vae", "tiny_wan21_vae.safetensors"), return_metadata=True)
    vae = comfy.sd.VAE(sd=sd, metadata=meta)
    cond = [[torch.randn(1, 8, 4096, generator=torch.Generator().manual_seed(1)), {}]]
    control = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(2))

    def run(start, seed=0):
        pos, neg, latent = WanFunControlToVideo.execute(cond, cond, vae, 32, 32, 5, 1, start_image=start,
                                                        control_video=control).result
        return nodes.common_ksampler(model, seed, 2, 1.0, "euler", "simple", pos, neg, latent)[0]["samples"]

    a, b = run(control[:1]), run(control[:1])
    assert a.shape == (1, 16, 2, 4, 4) and torch.isfinite(a).all()
    torch.testing.assert_close(a, b)  # same start frame, control and seed: same video
    assert not torch.equal(a, run(1 - control[:1]))  # the start frame reaches the model
