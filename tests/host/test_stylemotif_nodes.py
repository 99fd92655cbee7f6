"""StyleMotif nodes inside the real ComfyUI (in process, CPU), called through execute(); text comes
from the tiny CLIP-L fixture (ComfyUI's own SD1 CLIP classes, width 768) through the stock CLIPTextEncode."""
import contextlib
import importlib
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope="module")
def sm(unistyle, tiny_models):
    import folder_paths
    folder_paths.add_model_folder_path("stylemotif", os.path.join(tiny_models, "stylemotif"), is_default=True)
    return importlib.import_module("unistyle_pack.nodes.stylemotif")


@pytest.fixture
def dirs(tiny_models, tmp_path, monkeypatch):
    """ComfyUI's input/ (with the sample motions) and output/ in tmp_path."""
    import folder_paths
    inp, out = tmp_path / "input", tmp_path / "output"
    shutil.copytree(os.path.join(tiny_models, "stylemotif", "samples"), inp / "samples")
    out.mkdir()
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(inp))
    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(out))
    return inp, out


@pytest.fixture(scope="module")
def model(sm):
    return sm.StyleMotifModelLoader.execute("tiny_stylemotif.safetensors").result[0]


@pytest.fixture(scope="module")
def cond(test_nodes):
    import nodes
    clip = test_nodes.TinyCLIPLoader.execute(clip_name="tiny_clip_l.safetensors").result[0]

    def encode(text):
        return nodes.CLIPTextEncode().encode(clip, text)[0]
    return encode


def test_node_ids_tooltips_and_motion_upload_list(sm, dirs):
    ids = [n.define_schema().node_id for n in sm.NODES]
    for want in ("StyleMotifModelLoader", "StyleMotifEncodeStyle", "StyleMotifStyleFromEmbedding", "StyleMotifBlendStyles",
                 "StyleMotifStylize", "StyleMotifRenderSkeleton", "StyleMotifSaveMotion", "StyleMotifLoadMotion", "StyleMotifTrain"):
        assert want in ids
    for n in sm.NODES:
        schema = n.define_schema()
        assert schema.category == "UniStyle/StyleMotif"
        assert all(i.tooltip for i in schema.inputs), schema.node_id
    assert "tiny_stylemotif.safetensors" in sm.StyleMotifModelLoader.define_schema().inputs[0].options
    (dirs[0] / "notes.txt").write_text("x")
    file_input = sm.StyleMotifLoadMotion.define_schema().inputs[0]
    assert file_input.options == ["samples/run_happy.bvh", "samples/walk_neutral.npy", "samples/walk_old.bvh"]
    assert file_input.as_dict().get("file_upload") is True  # the upload button, like LoadImage's


def test_conditioning_is_clip_l_pooled_768(cond):
    c = cond("a person walks forward")
    pooled = c[0][1]["pooled_output"]
    assert pooled.shape == (1, 768) and not torch.allclose(pooled, cond("")[0][1]["pooled_output"])


def test_load_encode_stylize_render_save(sm, model, cond, dirs):
    import comfy.model_management
    walk_old = sm.StyleMotifLoadMotion.execute("samples/walk_old.bvh").result[0]
    walk_neutral = sm.StyleMotifLoadMotion.execute("samples/walk_neutral.npy").result[0]
    assert walk_old["features"].shape == (40, 263)
    style = sm.StyleMotifEncodeStyle.execute(model, walk_old).result[0]
    assert style["vector"].shape == (64,)
    assert any(m.model is model for m in comfy.model_management.current_loaded_models)  # the memory manager holds it
    args = dict(positive=cond("a person walks forward"), negative=cond(""), block_m=0, steps=4, seed=3, frames=24, strength=0.7)
    plain = sm.StyleMotifStylize.execute(model, style, gamma=0.0, guidance=2.5, **args).result[0]
    styled = sm.StyleMotifStylize.execute(model, style, gamma=0.6, guidance=2.5, **args).result[0]
    assert plain["features"].shape == styled["features"].shape == (24, 263)
    assert not torch.allclose(plain["features"], styled["features"])
    transfer = {**args, "gamma": 0.6, "content_motion": walk_neutral}
    guided = sm.StyleMotifStylize.execute(model, style, guidance=2.5, **transfer).result[0]
    unguided = sm.StyleMotifStylize.execute(model, style, guidance=1.0, **transfer).result[0]
    other_text = sm.StyleMotifStylize.execute(model, style, guidance=2.5, **{**transfer, "positive": cond("a person jumps")}).result[0]
    assert guided["features"].shape == (40, 263)
    assert not torch.allclose(guided["features"], unguided["features"])  # guidance acts in transfer
    assert not torch.allclose(guided["features"], other_text["features"])  # and so does the text

    images = sm.StyleMotifRenderSkeleton.execute(styled, 64, 48, 30.0, 15.0, 1.0, True).result[0]
    assert images.shape == (24, 48, 64, 3) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.01

    out = sm.StyleMotifSaveMotion.execute(styled, "sm/test", "npy+bvh")
    files = out.ui["motions"]
    assert [os.path.splitext(f["filename"])[1] for f in files] == [".npy", ".bvh"]
    npy = os.path.join(dirs[1], files[0]["subfolder"], files[0]["filename"])
    assert np.allclose(np.load(npy), styled["features"].numpy())
    preview = out.ui["images"][0]
    webp = Image.open(os.path.join(dirs[1], preview["subfolder"], preview["filename"]))
    assert webp.size == (384, 384) and webp.n_frames == 24 and out.ui["animated"] == (True,)
    shutil.copy(os.path.join(dirs[1], files[1]["subfolder"], files[1]["filename"]), dirs[0] / "back.bvh")
    back = sm.StyleMotifLoadMotion.execute("back.bvh").result[0]
    assert back["features"].shape == (23, 263)  # F joint frames -> F-1 feature frames


def test_style_from_text_and_image_and_blend(sm, model, cond):
    import comfy.clip_vision
    old, matches = sm.StyleMotifStyleFromEmbedding.execute(model, 1, 0.1, conditioning=cond("like an elderly person")).result
    assert matches.startswith(tuple(model.model.bank_labels)) and old["vector"].shape == (64,)
    happy, _ = sm.StyleMotifStyleFromEmbedding.execute(model, 2, 0.1, conditioning=cond("happy")).result
    mix = sm.StyleMotifBlendStyles.execute(old, 0.25, happy, 0.75).result[0]
    assert torch.allclose(mix["vector"], 0.25 * old["vector"] + 0.75 * happy["vector"], atol=1e-6)
    image = comfy.clip_vision.Output()
    image["image_embeds"] = torch.randn(1, 768)
    from_image, _ = sm.StyleMotifStyleFromEmbedding.execute(model, 1, 0.1, clip_vision_output=image).result
    assert from_image["vector"].shape == (64,)
    image["image_embeds"] = torch.randn(1, 1024)  # ViT-H: not the space this model was aligned to
    with pytest.raises(ValueError, match="clip_vision_output: .*expected width 768"):
        sm.StyleMotifStyleFromEmbedding.execute(model, 1, 0.1, clip_vision_output=image)
    with pytest.raises(ValueError, match="temperature"):
        sm.StyleMotifStyleFromEmbedding.execute(model, 1, float("nan"), conditioning=cond("happy"))


def test_hostile_and_careless_inputs_get_errors_naming_the_input(sm, model, cond, dirs, tmp_path):
    inp, out = dirs
    style = {"vector": torch.zeros(64), "source": "x"}
    args = dict(positive=cond("walk"), negative=cond(""), gamma=0.6, block_m=0, steps=2, seed=0, guidance=2.5, frames=8, strength=0.7)
    for bad, name in ((dict(gamma=float("nan")), "gamma"), (dict(guidance=float("inf")), "guidance"),
                      (dict(positive=[[torch.zeros(1, 77, 768), {}]]), "positive"), (dict(block_m=9), "block_m")):
        with pytest.raises(ValueError, match=f"^{name}"):
            sm.StyleMotifStylize.execute(model, style, **{**args, **bad})
    with pytest.raises(ValueError, match="^style"):
        sm.StyleMotifStylize.execute(model, {"vector": torch.full((64,), float("nan"))}, **args)
    outside = tmp_path / "secret.npy"
    np.save(outside, np.zeros((10, 263), np.float32))
    for name in (str(outside), "../secret.npy", "samples/../../secret.npy"):
        with pytest.raises(ValueError, match="^file:"):
            sm.StyleMotifLoadMotion.execute(name)
    os.symlink(outside, inp / "link.npy")
    with pytest.raises(ValueError, match="^file: .*outside"):
        sm.StyleMotifLoadMotion.execute("link.npy")
    arr = np.zeros((10, 263), np.float32)
    arr[2, 2] = np.nan
    np.save(inp / "nan.npy", arr)
    np.save(inp / "wide.npy", np.zeros((10, 250), np.float32))
    np.save(inp / "pickled.npy", np.array([{"a": 1}], dtype=object))  # an object array: stored as a pickle
    for name, msg in (("nan.npy", "NaN"), ("wide.npy", r"\[frames, 263\].*\(10, 250\)"), ("pickled.npy", "pickle"),
                      ("nope.bvh", "no file")):
        with pytest.raises(ValueError, match=f"^file: .*{msg}"):
            sm.StyleMotifLoadMotion.execute(name)
    motion = sm.StyleMotifLoadMotion.execute("samples/walk_neutral.npy").result[0]
    for prefix in ("../escape", str(tmp_path / "abs")):
        with pytest.raises(ValueError, match="^filename_prefix"):
            sm.StyleMotifSaveMotion.execute(motion, prefix, "npy")
    assert not list(tmp_path.glob("escape*")) and not list(tmp_path.glob("abs*"))
    with pytest.raises(ValueError, match="^width/height: .*GiB"):
        sm.StyleMotifRenderSkeleton.execute(motion, 4096, 4096, 30.0, 15.0, 1.0, True)


@contextlib.contextmanager
def interrupted_after(updates):
    """The user presses Cancel after the `updates`-th progress-bar update: ComfyUI's interrupt flag is set, and
    the next interrupt check raises."""
    import comfy.model_management
    import comfy.utils
    real, count = comfy.utils.ProgressBar.update_absolute, []

    def update(self, value, total=None, preview=None):
        count.append(value)
        if len(count) == updates:
            comfy.model_management.interrupt_current_processing(True)
        return real(self, value, total, preview)
    comfy.utils.ProgressBar.update_absolute = update
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            yield
    finally:
        comfy.utils.ProgressBar.update_absolute = real
        comfy.model_management.interrupt_current_processing(False)


def test_train_node_refuses_overwrite_resumes_and_hides_partial_state(sm, tmp_path, test_nodes):
    import comfy.model_management
    import folder_paths
    folder_paths.add_model_folder_path("stylemotif", str(tmp_path), is_default=True)
    args = dict(clips=20, vae_steps=3, denoiser_steps=3, stylization_steps=2, alignment_steps=2, latent_dim=32, seed=0)
    try:
        with torch.inference_mode(), interrupted_after(3):  # stopped in the denoiser stage (its step 1)
            sm.StyleMotifTrain.execute("t", False, **args)
        assert os.path.exists(tmp_path / "t.partial" / "denoiser.resume")
        assert not [f for f in folder_paths.get_filename_list("stylemotif") if f.startswith("t.")]  # nothing listed
        with torch.inference_mode(), pytest.raises(ValueError, match="^name: resume: vae.resume .*steps was 3, now 4"):
            sm.StyleMotifTrain.execute("t", False, **{**args, "vae_steps": 4})  # another job may not continue this one
        with torch.inference_mode():  # as ComfyUI's executor runs nodes
            resumed = sm.StyleMotifTrain.execute("t", False, **args).result[0].model
            fresh = sm.StyleMotifTrain.execute("u", False, **args).result[0].model
        for a, b in zip(resumed.state_dict().values(), fresh.state_dict().values()):
            assert torch.equal(a, b)  # interrupted + resumed == uninterrupted, bit for bit
        assert "t.safetensors" in folder_paths.get_filename_list("stylemotif") and not os.path.exists(tmp_path / "t.partial")
        with pytest.raises(ValueError, match="^name: .*t.safetensors already exists.*overwrite"):
            sm.StyleMotifTrain.execute("t", False, **args)
        for bad in ("../t", "/tmp/t", ".hidden"):
            with pytest.raises(ValueError, match="^name"):
                sm.StyleMotifTrain.execute(bad, False, **args)
    finally:
        folder_paths.folder_names_and_paths["stylemotif"][0].remove(str(tmp_path))
    assert resumed.config.latent_dim == 32 and len(resumed.bank_labels) == 5


def write_100style(root, per_style=3, frames=30):
    """A tiny folder in 100STYLE layout (features, texts, split, style names) from procedural clips."""
    features_from_joints = importlib.import_module("unistyle_pack.stylemotif.humanml3d").features_from_joints
    generate = importlib.import_module("unistyle_pack.stylemotif.procedural").generate
    rng = np.random.default_rng(0)
    (root / "new_joint_vecs").mkdir(parents=True)
    (root / "texts").mkdir()
    ids, names = [], []
    for s, (style, label) in enumerate((("old", "Old"), ("happy", "Happy"))):
        for k in range(per_style):
            i = f"{s:03d}{k:03d}"
            np.save(root / "new_joint_vecs" / f"{i}.npy", features_from_joints(generate("walk", style, frames + 1, rng).joints).numpy())
            (root / "texts" / f"{i}.txt").write_text("a person walks forward.#a/DET#0.0#0.0\n")
            ids.append(i)
            names.append(f"{i} {label}_FW_{k:02d}.bvh")
    (root / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "Style_name_dict.txt").write_text("\n".join(names) + "\n")


def test_fine_tune_node_on_100style_layout_resumes_bit_identically(sm, dirs, tmp_path, test_nodes):
    import comfy.model_management
    import folder_paths
    clip = test_nodes.TinyCLIPLoader.execute(clip_name="tiny_clip_l.safetensors").result[0]
    write_100style(dirs[0] / "100style")
    out = tmp_path / "models"
    out.mkdir()
    folder_paths.add_model_folder_path("stylemotif", str(out), is_default=True)
    args = dict(dataset="100style", overwrite=False, style_pretrain_steps=2, stylization_steps=3, alignment_steps=2,
                frames=30, clips=20, seed=0)
    try:
        with torch.inference_mode(), interrupted_after(3):  # stopped in the stylization stage (after its step 2)
            sm.StyleMotifFineTuneStyle.execute("tiny_stylemotif.safetensors", clip, name="a", **args)
        assert os.path.exists(out / "a.partial" / "stylization.resume")
        with torch.inference_mode():
            resumed = sm.StyleMotifFineTuneStyle.execute("tiny_stylemotif.safetensors", clip, name="a", **args).result[0].model
            fresh = sm.StyleMotifFineTuneStyle.execute("tiny_stylemotif.safetensors", clip, name="b", **args).result[0].model
        for (k, a), b in zip(resumed.state_dict().items(), fresh.state_dict().values()):
            assert torch.equal(a, b), k
        assert sorted(resumed.bank_labels) == ["Happy", "Old"]
        base = sm.StyleMotifModelLoader.execute("tiny_stylemotif.safetensors").result[0].model
        assert torch.equal(resumed.denoiser.encoder.norm.weight, base.denoiser.encoder.norm.weight)  # the base stays frozen
        assert not torch.equal(resumed.style_encoder.skel_embedding.weight, base.style_encoder.skel_embedding.weight)
        for bad, name in (({"dataset": "../100style"}, "dataset"), ({"dataset": "missing"}, "dataset"), ({"name": "a"}, "name")):
            with pytest.raises(ValueError, match=f"^{name}"):
                sm.StyleMotifFineTuneStyle.execute("tiny_stylemotif.safetensors", clip, **{**args, "name": "c", **bad})
    finally:
        folder_paths.folder_names_and_paths["stylemotif"][0].remove(str(out))
