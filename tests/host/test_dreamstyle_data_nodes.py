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


@pytest.fixture
def output_dir(comfy, tmp_path):
    """ComfyUI's output folder pointed at a fresh tmp folder for one test."""
    import folder_paths
    before = folder_paths.get_output_directory()
    folder_paths.set_output_directory(str(tmp_path / "output"))
    os.makedirs(tmp_path / "output")
    yield tmp_path / "output"
    folder_paths.set_output_directory(before)


@pytest.fixture(scope="module")
def clip_vision(test_nodes, tiny_models):
    return test_nodes.load_tiny_clip_vision(os.path.join(tiny_models, "clip_vision", "tiny_clip_vision.safetensors"))


def test_strip_caption_node(data_nodes):
    strip = data_nodes.DreamStyleStripStyleCaption.execute
    out = strip("A watercolor painting of a fox in the snow, muted zorblax tones", "zorblax").result
    assert out == ("A fox in the snow", "A watercolor painting of; muted zorblax tones")
    # a VLM's style-free caption passes through untouched; style words in it are stripped or refused
    sty = "a fox in the snow, in ink wash style"
    assert strip(sty, "", caption_ns="A red fox trots through deep snow.").result == \
        ("A red fox trots through deep snow.", "")
    assert strip(sty, "", caption_ns="a fox trots through snow, sepia tones").result[0] == "a fox trots through snow"
    with pytest.raises(ValueError, match=r"caption_ns: contains style vocabulary 'sepia tones'"):
        strip(sty, "", caption_ns="a fox trots through snow, sepia tones", on_style_words="refuse")
    with pytest.raises(ValueError, match="caption_sty: .*all style vocabulary"):
        strip("watercolor, pastel palette", "")


def test_filter_scores_with_comfy_clip_vision(data_nodes, pairs, clip_vision):
    """Style: cosine of the mean unit image_embeds of stylized frames vs references; content: mean cosine of raw
    vs stylized frame embeddings; both computed here from ComfyUI's own encode_image and compared."""
    ink, thermal = pairs[0], pairs[1]
    run = data_nodes.DreamStylePairFilter.execute
    ok = run(image(ink.raw), image(ink.stylized), image(ink.refs), clip_vision, -1.0, -1.0, 8).result

    def unit(x):
        e = clip_vision.encode_image(image(x)).image_embeds.detach().double()
        return e / e.norm(dim=-1, keepdim=True)
    v, r = unit(ink.stylized).mean(0), unit(ink.refs).mean(0)
    assert ok[2] == pytest.approx(float(v @ r / v.norm() / r.norm()), abs=1e-5)
    assert ok[3] == pytest.approx(float((unit(ink.raw) * unit(ink.stylized)).sum(-1).mean()), abs=1e-5)
    assert unit(ink.refs).shape[-1] == 16  # the fixture's projection width: image_embeds, not the proxy
    wrong = run(image(ink.raw), image(ink.stylized), image(thermal.refs), clip_vision, 1.0, -1.0, 8).result
    assert wrong[0] is False and "style score" in wrong[1] and wrong[2] != ok[2]
    with pytest.raises(ValueError, match="stylized_video: expected the raw video's shape"):
        run(image(ink.raw), image(ink.stylized[:3]), image(ink.refs), clip_vision, 0.5, 0.2, 8)
    assert data_nodes.DreamStylePairFilter.define_schema().inputs[4].default == 0.5  # DreamStyle's CSD > 0.5


@pytest.mark.parametrize("bad, message", [
    (lambda x: x.index_fill(0, torch.tensor([1]), float("nan")), "stylized_video: contains NaN"),
    (lambda x: x[:0], "stylized_video: the video has 0 frames"),
    (lambda x: x[:, :1, :1], "stylized_video: frames are 1x1 pixels"),
])
def test_data_nodes_refuse_garbage_images_naming_the_input(data_nodes, pairs, clip_vision, output_dir, bad, message):
    from unistyle_pack.nodes.input_checks import checked  # how the pack registers every node
    p = pairs[0]
    sty = bad(image(p.stylized))
    with pytest.raises(ValueError, match=message):
        checked(data_nodes.DreamStylePairFilter).execute(image(p.raw), sty, image(p.refs), clip_vision, 0.5, 0.5, 8)
    with pytest.raises(ValueError, match=message):
        checked(data_nodes.DreamStyleSavePair).execute("ds", image(p.raw), sty, image(p.refs), "a", "b", True, "", "", "train",
                                              16.0)
    assert not os.path.exists(output_dir / "ds" / "manifest.jsonl")


def test_control_video_composes_the_chosen_maps_and_asks_only_for_them(data_nodes):
    node = data_nodes.DreamStyleControlVideo
    depth = torch.full((3, 16, 16, 3), 0.5)
    pose = torch.zeros(3, 16, 16, 3)
    pose[:, 4, 2:9] = torch.tensor([1.0, 0.0, 0.0])  # a red limb
    edges = torch.rand(3, 16, 16, 3)
    assert node.check_lazy_status("depth+pose") == ["depth_map", "pose_map"]
    assert node.check_lazy_status("canny", depth_map=depth) == ["edge_map"]
    assert node.check_lazy_status("depth", depth_map=depth) == []
    out = node.execute("depth+pose", depth_map=depth, pose_map=pose).result[0]
    assert torch.equal(out[:, 4, 2:9], pose[:, 4, 2:9]) and (out[:, 5] == 0.5).all()
    assert torch.equal(node.execute("canny", edge_map=edges).result[0], edges)
    with pytest.raises(ValueError, match="pose_map: control 'depth\\+pose' needs it"):
        node.execute("depth+pose", depth_map=depth)
    with pytest.raises(ValueError, match="pose_map: expected"):
        node.execute("depth+pose", depth_map=depth, pose_map=pose[:2])


def test_save_pair_writes_skips_and_rejects(data_nodes, pairs, output_dir):
    p = pairs[0]
    args = dict(dataset_dir="ds", raw_video=image(p.raw), stylized_video=image(p.stylized),
                style_refs=image(p.refs), caption_ns=p.caption_ns, caption_sty=p.caption_sty, passed=True,
                reason="passed: test", pair_id="", split="train", fps=16.0)
    first = data_nodes.DreamStyleSavePair.execute(**args, control_video=image(p.raw), style_score=0.9, content_score=0.5)
    pid, status = first.result
    assert status == "written" and pid.startswith("pair-")
    assert data_nodes.DreamStyleSavePair.execute(**args).result == (pid, "skipped: already in the dataset")
    rejected = data_nodes.DreamStyleSavePair.execute(**{**args, "pair_id": "other", "passed": False,
                                                         "reason": "rejected: style score 0.1 < min_style 0.7"})
    assert rejected.result == ("other", "not written: rejected: style score 0.1 < min_style 0.7")
    report = check_dataset(output_dir / "ds")
    assert report.ok and report.pairs == 1
    pair = next(iter_pairs(output_dir / "ds"))
    np.testing.assert_array_equal(pair.load_raw(), p.raw)  # uint8 -> IMAGE -> uint8 is exact
    np.testing.assert_array_equal(pair.load_control(), p.raw)
    assert pair.record["scores"] == {"style": 0.9, "content": 0.5}


def test_save_pair_reports_progress_with_previews_and_stops_on_interrupt(data_nodes, pairs, output_dir):
    import comfy.model_management
    import comfy.utils
    p, seen = pairs[0], []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total,
                                                                                                      preview)))
    try:
        args = ("ds", image(p.raw), image(p.stylized), image(p.refs), "a", "b", True, "", "p0", "train", 16.0)
        data_nodes.DreamStyleSavePair.execute(*args)
        assert [v for v, _, _ in seen] == list(range(1, 11)) and {t for _, t, _ in seen} == {10}
        assert all(pv[0] == "JPEG" and pv[1].size == (p.raw.shape[2], p.raw.shape[1]) for _, _, pv in seen)
        comfy.model_management.interrupt_current_processing(True)
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            data_nodes.DreamStyleSavePair.execute(*args[:8], "p1", "train", 16.0)
    finally:
        comfy.model_management.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(None)
    assert [pr.id for pr in iter_pairs(output_dir / "ds")] == ["p0"]
    assert os.listdir(output_dir / "ds" / "pairs") == ["p0"]  # the interrupted pair left no temp folder


@pytest.mark.parametrize("name", ["/tmp/evil", "../evil", "a/../../evil", "C:\\evil"])
def test_dataset_dir_stays_inside_the_output_folder(data_nodes, pairs, output_dir, name):
    p = pairs[0]
    with pytest.raises(ValueError, match="dataset_dir: "):
        data_nodes.DreamStyleSavePair.execute(name, image(p.raw), image(p.stylized), image(p.refs), "a", "b", True, "",
                                              "", "train", 16.0)
    with pytest.raises(ValueError, match="dataset_dir: "):
        data_nodes.DreamStyleCheckDataset.execute(name, True)
    assert not os.path.exists(output_dir.parent / "evil") and not os.path.exists("/tmp/evil")


def test_a_registered_unistyle_datasets_folder_takes_the_datasets(data_nodes, pairs, output_dir, tmp_path):
    import folder_paths
    p, shared = pairs[0], tmp_path / "shared_datasets"
    folder_paths.add_model_folder_path("unistyle_datasets", str(shared), is_default=True)
    try:
        status = data_nodes.DreamStyleSavePair.execute("team/ds", image(p.raw), image(p.stylized), image(p.refs),
                                                       "a", "b", True, "", "p0", "train", 16.0).result[1]
        assert status == "written" and check_dataset(shared / "team" / "ds").pairs == 1
        assert data_nodes.DreamStyleCheckDataset.execute("team/ds", False).result[1] == 1
    finally:
        del folder_paths.folder_names_and_paths["unistyle_datasets"]
    assert not (output_dir / "team").exists()


def test_save_pair_never_changes_a_foreign_file(data_nodes, pairs, output_dir):
    (output_dir / "notes").mkdir()
    (output_dir / "notes" / "manifest.jsonl").write_text("my notes, no newline")
    p = pairs[0]
    with pytest.raises(ValueError, match="dataset_dir: .*not a DreamStyle manifest"):
        data_nodes.DreamStyleSavePair.execute("notes", image(p.raw), image(p.stylized), image(p.refs), "a", "b", True,
                                              "", "", "train", 16.0)
    assert (output_dir / "notes" / "manifest.jsonl").read_text() == "my notes, no newline"


def test_check_node_reports_problems_with_line_and_path(data_nodes, pairs, output_dir):
    p = pairs[1]
    data_nodes.DreamStyleSavePair.execute("ds", image(p.raw), image(p.stylized), image(p.refs), p.caption_ns,
                                          p.caption_sty, True, "", "a", "train", 16.0)
    os.remove(output_dir / "ds" / "pairs" / "a" / "ref_01.png")
    text, valid, errors = data_nodes.DreamStyleCheckDataset.execute("ds", True).result
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
