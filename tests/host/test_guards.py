"""nodes/guards.py: names that leave ComfyUI's folders are refused, NaN/inf refused, refusals name the input."""
import math
import os

import pytest
import torch


@pytest.fixture(scope="module")
def guards(unistyle):
    import importlib
    return importlib.import_module("unistyle_pack.nodes.guards")


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """A fake ComfyUI base: input/, output/, models/loras/, and an outside/ folder with a secret file."""
    import folder_paths
    base = tmp_path / "comfy"
    for sub in ("input", "output", "temp", "models/loras"):
        (base / sub).mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.npy").write_bytes(b"secret")
    monkeypatch.setattr(folder_paths, "input_directory", str(base / "input"))
    monkeypatch.setattr(folder_paths, "output_directory", str(base / "output"))
    monkeypatch.setattr(folder_paths, "temp_directory", str(base / "temp"))
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras", ([str(base / "models/loras")], {".safetensors"}))
    folder_paths.filename_list_cache.pop("loras", None)
    yield base, outside
    folder_paths.filename_list_cache.pop("loras", None)


HOSTILE_NAMES = [
    ("/etc/passwd", "absolute"),
    ("\\\\server\\share\\x", "absolute"),
    ("C:\\Windows\\x", "absolute"),
    ("c:x", "absolute"),
    ("..", "'..'"),
    ("../outside/secret.npy", "'..'"),
    ("a/../../outside", "'..'"),
    ("a\\..\\..\\outside", "'..'"),
    ("ok/..", "'..'"),
    ("x\x00.npy", "NUL"),
    ("", "empty"),
    ("   ", "empty"),
    (None, "empty"),
]


@pytest.mark.parametrize("name,fragment", HOSTILE_NAMES)
def test_resolve_under_refuses_names_that_leave_the_root(guards, dirs, name, fragment):
    base, _ = dirs
    with pytest.raises(guards.NodeInputError, match=f"^my_input: .*{fragment}"):
        guards.resolve_under(str(base / "output"), name, "my_input")


def test_resolve_under_accepts_nested_relative_names(guards, dirs):
    base, _ = dirs
    real_out = os.path.realpath(base / "output")
    assert guards.resolve_under(str(base / "output"), "a/b/c.npy", "x") == os.path.join(real_out, "a", "b", "c.npy")
    assert guards.resolve_under(str(base / "output"), " sets/x ", "x") == os.path.join(real_out, "sets", "x")


def test_the_root_itself_is_not_a_name(guards, dirs):
    base, _ = dirs
    for name in (".", "./", "a/.."):
        with pytest.raises(guards.NodeInputError, match="^x: "):
            guards.resolve_under(str(base / "output"), name, "x")


def test_symlink_escapes_are_refused_after_realpath(guards, dirs):
    base, outside = dirs
    os.symlink(outside, base / "output" / "link")
    os.symlink(outside / "secret.npy", base / "input" / "secret.npy")
    with pytest.raises(guards.NodeInputError, match="^dataset_dir: .*resolves outside"):
        guards.output_folder("link/new", "dataset_dir")
    with pytest.raises(guards.NodeInputError, match="^file: .*resolves outside"):
        guards.input_file("secret.npy", "file")


def test_a_sibling_with_the_root_as_prefix_is_outside(guards, dirs):
    """commonpath, not startswith: output2/ is not inside output/."""
    base, _ = dirs
    (base / "output2").mkdir()
    os.symlink(base / "output2", base / "output" / "sib")
    with pytest.raises(guards.NodeInputError, match="resolves outside"):
        guards.resolve_under(str(base / "output"), "sib/x", "x")


def test_a_symlink_that_stays_inside_is_followed(guards, dirs):
    base, _ = dirs
    (base / "output" / "real").mkdir()
    os.symlink(base / "output" / "real", base / "output" / "alias")
    assert guards.output_folder("alias/set", "d") == os.path.join(os.path.realpath(base / "output"), "real", "set")


def test_input_file_existing_missing_and_annotated(guards, dirs):
    base, _ = dirs
    (base / "input" / "sub").mkdir()
    (base / "input" / "sub" / "a.bvh").write_text("x")
    (base / "output" / "b.npy").write_bytes(b"x")
    assert guards.input_file("sub/a.bvh", "file") == os.path.realpath(base / "input" / "sub" / "a.bvh")
    assert guards.input_file("b.npy [output]", "file") == os.path.realpath(base / "output" / "b.npy")
    with pytest.raises(guards.NodeInputError, match="^file: no file 'nope.bvh'"):
        guards.input_file("nope.bvh", "file")
    with pytest.raises(guards.NodeInputError, match="^file: .*'..'"):
        guards.input_file("../output/b.npy", "file")
    with pytest.raises(guards.NodeInputError, match="^file: expected a file name"):
        guards.input_file(3, "file")


def test_find_output_folder(guards, dirs):
    base, _ = dirs
    (base / "output" / "pairs").mkdir()
    assert guards.find_output_folder("pairs", "dataset_dir") == os.path.realpath(base / "output" / "pairs")
    with pytest.raises(guards.NodeInputError, match="^dataset_dir: no folder 'other'"):
        guards.find_output_folder("other", "dataset_dir")
    with pytest.raises(guards.NodeInputError, match="^dataset_dir: absolute"):
        guards.find_output_folder(str(base / "output" / "pairs"), "dataset_dir")


def test_model_file_only_by_listed_name(guards, dirs):
    base, outside = dirs
    (base / "models/loras/a.safetensors").write_bytes(b"x")
    (base / "models/loras/a.safetensors.ckpt").write_bytes(b"x")
    (outside / "shared.safetensors").write_bytes(b"x")
    os.symlink(outside / "shared.safetensors", base / "models/loras/shared.safetensors")  # placed by the owner
    assert guards.model_file("loras", "a.safetensors", "lora_name") == str(base / "models/loras/a.safetensors")
    assert guards.model_file("loras", "shared.safetensors", "lora_name").endswith("shared.safetensors")
    for name in ("a.safetensors.ckpt", "../loras/a.safetensors", str(base / "models/loras/a.safetensors"),
                 "missing.safetensors"):
        with pytest.raises(guards.NodeInputError, match="^lora_name: "):
            guards.model_file("loras", name, "lora_name")


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "C:x", "ab:c", "x\x00", "", None, ".safetensors"])
def test_plain_name_refuses_anything_but_a_stem(guards, name):
    with pytest.raises(guards.NodeInputError, match="^output_name: expected a plain file name"):
        guards.plain_name(name, "output_name")


def test_new_model_path_refuses_an_existing_file_unless_overwrite(guards, dirs):
    base, _ = dirs
    path = guards.new_model_path("loras", "mine.safetensors", "lora_name")
    assert path == os.path.join(os.path.realpath(base / "models/loras"), "mine.safetensors")
    open(path, "wb").close()
    with pytest.raises(guards.NodeInputError, match="^lora_name: models/loras/mine.safetensors already exists.*overwrite"):
        guards.new_model_path("loras", "mine", "lora_name")
    assert guards.new_model_path("loras", "mine", "lora_name", overwrite=True) == path


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_finite_refuses_bad_numbers(guards, value):
    with pytest.raises(guards.NodeInputError, match="^strength: expected a finite number"):
        guards.finite(value, "strength")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.float8_e5m2])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_finite_refuses_a_bad_element_and_names_its_frame(guards, dtype, bad):
    video = torch.rand(5, 4, 4, 3)
    video[3, 1, 2, 0] = bad
    with pytest.raises(guards.NodeInputError, match=r"^video: contains NaN or infinite values \(item 3 of 5"):
        guards.finite(video.to(dtype), "video")


def test_finite_passes_finite_values_and_other_types(guards):
    for value in (0.5, 3, True, "nan", None, torch.tensor([1, 2]), torch.zeros(0), torch.tensor(2.0)):
        assert guards.finite(value, "x") is value
    assert guards.finite(torch.rand(3, 8, 8, 3).half(), "x") is not None


def test_finite_is_exact_when_finite_values_overflow_the_sum(guards):
    """Huge finite values make the quick sum inf; the item-by-item check must still accept them."""
    big = torch.full((4, 1000), 6e4, dtype=torch.float16)
    assert not torch.isfinite(big.sum())
    guards.finite(big, "x")
    guards.finite(torch.full((2, 3), 3e38), "x")
    with pytest.raises(guards.NodeInputError, match=r"^x: .*\(item"):
        guards.finite(torch.tensor([3e38, 3e38, math.nan]), "x")
    with pytest.raises(guards.NodeInputError, match="^x: contains NaN or infinite values$"):
        guards.finite(torch.tensor(math.inf), "x")


def test_new_model_path_sees_every_folder_of_the_kind_and_symlinks(guards, dirs, tmp_path, monkeypatch):
    """A model in a second folder (extra_model_paths) or the owner's symlink is an existing model too; with
    overwrite, a symlink that leaves the folder is not written through."""
    import folder_paths
    base, outside = dirs
    extra = tmp_path / "extra_loras"
    extra.mkdir()
    (extra / "shared.safetensors").write_bytes(b"x")
    (outside / "linked.safetensors").write_bytes(b"x")
    os.symlink(outside / "linked.safetensors", base / "models/loras/linked.safetensors")
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "loras",
                        ([str(base / "models/loras"), str(extra)], {".safetensors"}))
    for name in ("shared", "linked"):
        with pytest.raises(guards.NodeInputError, match=f"^lora_name: models/loras/{name}.safetensors already exists"):
            guards.new_model_path("loras", name, "lora_name")
    with pytest.raises(guards.NodeInputError, match="^lora_name: .*resolves outside"):
        guards.new_model_path("loras", "linked", "lora_name", overwrite=True)
    assert (outside / "linked.safetensors").read_bytes() == b"x"
