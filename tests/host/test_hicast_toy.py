"""The toy HiCAST (scripts/train_toy_hicast.py -> assets/hicast_toy): pinned files, and the trained style
encoder steers the trained base toward the look of the style it is shown (bench/hicast_toy.py has the numbers)."""
import os
import shutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDER = os.path.join(ROOT, "assets", "hicast_toy")
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(FOLDER, "eval.json")),
                                reason="assets/hicast_toy not trained yet (scripts/train_toy_hicast.py)")


@pytest.fixture(scope="module")
def toy(comfy):
    from scripts.train_toy_hicast import load_toy
    return load_toy(FOLDER)


def test_a_changed_toy_file_is_refused(comfy, tmp_path):
    from scripts.train_toy_hicast import FILES, load_toy
    shutil.copytree(FOLDER, tmp_path / "toy")
    path = tmp_path / "toy" / FILES["edge_adapter"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_toy(str(tmp_path / "toy"))


def test_the_style_shown_decides_the_look(toy):
    from scripts.train_toy_hicast import EVAL_SCENES, STYLES, scene_frames, style_distance, stylize, to_images
    base, levels, adapter, encoder, _, tokens, _ = toy
    raw, _ = scene_frames(EVAL_SCENES[:3], frames=1)
    _, refs = scene_frames(range(2000, 2002), frames=1)
    x = to_images(raw[:, 0])
    outs = {name: stylize(base, levels, adapter, encoder, tokens, x, refs[name][:, 0], seed=5) for name in STYLES}
    for name in STYLES:
        target = refs[name][:, 0]
        other = next(n for n in STYLES if n != name)
        # the output made with this style's tokens is nearer this style than the one made with the other's
        assert style_distance(outs[name], target) < style_distance(outs[other], target), name
