"""StyleMotif nodes inside the real ComfyUI (in process, CPU), called through execute()."""
import importlib
import os

import numpy as np
import pytest
import torch



@pytest.fixture(scope="module")
def sm(unistyle, tiny_models):
    import folder_paths
    folder_paths.add_model_folder_path("stylemotif", os.path.join(tiny_models, "stylemotif"), is_default=True)
    return importlib.import_module("unistyle_pack.nodes.stylemotif")


@pytest.fixture(scope="module")
def model(sm):
    return sm.StyleMotifModelLoader.execute("tiny_stylemotif.safetensors").result[0]


def test_node_ids_and_tooltips(sm):
    ids = [n.define_schema().node_id for n in sm.NODES]
    for want in ("StyleMotifModelLoader", "StyleMotifEncodeStyle", "StyleMotifStyleFromEmbedding", "StyleMotifBlendStyles",
                 "StyleMotifStylize", "StyleMotifRenderSkeleton", "StyleMotifSaveMotion", "StyleMotifLoadMotion", "StyleMotifTrain"):
        assert want in ids
    for n in sm.NODES:
        schema = n.define_schema()
        assert schema.category == "UniStyle/StyleMotif"
        assert all(i.tooltip for i in schema.inputs), schema.node_id
    assert "tiny_stylemotif.safetensors" in sm.StyleMotifModelLoader.define_schema().inputs[0].options


def test_load_encode_stylize_render_save(sm, model, tmp_path, monkeypatch):
    import folder_paths
    walk_old = sm.StyleMotifLoadMotion.execute("samples/walk_old.bvh").result[0]
    walk_neutral = sm.StyleMotifLoadMotion.execute("samples/walk_neutral.npy").result[0]
    assert walk_old["features"].shape == (40, 263)
    style = sm.StyleMotifEncodeStyle.execute(model, walk_old).result[0]
    assert style["vector"].shape == (64,)
    args = dict(text="a person walks forward", block_m=0, steps=4, seed=3, guidance=2.5, frames=24, strength=0.7)
    plain = sm.StyleMotifStylize.execute(model, style, gamma=0.0, **args).result[0]
    styled = sm.StyleMotifStylize.execute(model, style, gamma=0.6, **args).result[0]
    assert plain["features"].shape == styled["features"].shape == (24, 263)
    assert not torch.allclose(plain["features"], styled["features"])
    transferred = sm.StyleMotifStylize.execute(model, style, gamma=0.6, content_motion=walk_neutral, **args).result[0]
    assert transferred["features"].shape == (40, 263)

    images = sm.StyleMotifRenderSkeleton.execute(styled, 64, 48, 30.0, 15.0, 1.0, True).result[0]
    assert images.shape == (24, 48, 64, 3) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1 and images.std() > 0.01

    monkeypatch.setattr(folder_paths, "get_output_directory", lambda: str(tmp_path))
    out = sm.StyleMotifSaveMotion.execute(styled, "sm/test", "npy+bvh")
    files = out.ui["motions"]
    assert [os.path.splitext(f["filename"])[1] for f in files] == [".npy", ".bvh"]
    npy = os.path.join(tmp_path, files[0]["subfolder"], files[0]["filename"])
    assert np.allclose(np.load(npy), styled["features"].numpy())
    back = sm.StyleMotifLoadMotion.execute(os.path.join(tmp_path, files[1]["subfolder"], files[1]["filename"])).result[0]
    assert back["features"].shape == (23, 263)  # F joint frames -> F-1 feature frames


def test_style_from_text_conditioning_and_blend(sm, model):
    old, matches = sm.StyleMotifStyleFromEmbedding.execute(model, "like an elderly person", 1, 0.1).result
    assert matches.startswith(tuple(model.bank_labels)) and old["vector"].shape == (64,)
    cond = [[torch.zeros(1, 3, 64), {"pooled_output": model.embed_text("happy").cpu()}]]
    happy, _ = sm.StyleMotifStyleFromEmbedding.execute(model, "", 2, 0.1, conditioning=cond).result
    mix = sm.StyleMotifBlendStyles.execute(old, 0.25, happy, 0.75).result[0]
    assert torch.allclose(mix["vector"], 0.25 * old["vector"] + 0.75 * happy["vector"], atol=1e-6)
    bad = [[torch.zeros(1, 3, 32), {"pooled_output": torch.zeros(1, 32)}]]
    with pytest.raises(ValueError, match="expected width 64"):
        sm.StyleMotifStyleFromEmbedding.execute(model, "", 1, 0.1, conditioning=bad)


def test_bad_motion_files_get_clear_errors(sm, tmp_path):
    wide = tmp_path / "wide.npy"
    np.save(wide, np.zeros((10, 250), np.float32))
    with pytest.raises(ValueError, match=r"\[frames, 263\].*\(10, 250\)"):
        sm.StyleMotifLoadMotion.execute(str(wide))
    nan = tmp_path / "nan.npy"
    arr = np.zeros((10, 263), np.float32)
    arr[2, 2] = np.nan
    np.save(nan, arr)
    with pytest.raises(ValueError, match="NaN"):
        sm.StyleMotifLoadMotion.execute(str(nan))
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 263), np.float32))
    with pytest.raises(ValueError, match="empty motion"):
        sm.StyleMotifLoadMotion.execute(str(empty))
    with pytest.raises(FileNotFoundError, match="not found"):
        sm.StyleMotifLoadMotion.execute("nope.bvh")


def test_train_node_writes_a_loadable_model(sm, tmp_path):
    import folder_paths
    folder_paths.add_model_folder_path("stylemotif", str(tmp_path), is_default=True)
    try:
        with torch.inference_mode():  # as ComfyUI's executor runs nodes
            model = sm.StyleMotifTrain.execute("t", 20, 3, 3, 2, 2, 32, 0).result[0]
    finally:
        folder_paths.folder_names_and_paths["stylemotif"][0].remove(str(tmp_path))
    assert os.path.exists(tmp_path / "t.safetensors") and os.path.exists(tmp_path / "t_ckpt" / "alignment.pt")
    assert model.config.latent_dim == 32 and len(model.bank_labels) == 5
