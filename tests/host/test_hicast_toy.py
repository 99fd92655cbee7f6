"""The toy HiCAST (scripts/train_toy_hicast.py -> assets/hicast_toy): the script runs end to end (--quick) and
writes pinned files that load back, and, once the trained toy is committed, the trained style encoder steers the
trained base toward the look of the style it is shown (bench/hicast_toy.py has the numbers)."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FOLDER = os.path.join(ROOT, "assets", "hicast_toy")
trained_toy = pytest.mark.skipif(not os.path.exists(os.path.join(FOLDER, "eval.json")),
                                 reason="assets/hicast_toy not committed (docs/hicast.md: the goals are not met)")


@pytest.fixture(scope="module")
def quick_toy(tmp_path_factory):
    """The script's smoke run (a few steps of every stage, meaningless numbers) in a fresh folder."""
    out = tmp_path_factory.mktemp("hicast_toy")
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "train_toy_hicast.py"), "--quick", "--out", str(out),
                    "--threads", "1"], check=True, capture_output=True, timeout=600)
    return out


@pytest.mark.slow
def test_the_script_writes_a_toy_that_loads_with_knobs_chosen_on_validation(comfy, quick_toy):
    from scripts.train_toy_hicast import STRENGTHS, STYLE_SCALES, load_toy, trained_knobs
    *_, result = load_toy(str(quick_toy))
    assert result["setup"]["quick"] is True
    t0, scale = trained_knobs(result)
    assert t0 in STRENGTHS and scale in STYLE_SCALES
    assert len(result["validation"]) == len(STRENGTHS) * len(STYLE_SCALES)
    for style in result["per_style"].values():
        assert 0 < style["ground_truth_error_vs_input"] < 10
    assert (quick_toy / "before_after.png").stat().st_size > 0


@pytest.mark.slow
def test_a_changed_toy_file_is_refused(comfy, quick_toy, tmp_path):
    from scripts.train_toy_hicast import FILES, load_toy
    shutil.copytree(quick_toy, tmp_path / "toy")
    path = tmp_path / "toy" / FILES["edge_adapter"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_toy(str(tmp_path / "toy"))


@trained_toy
def test_the_style_shown_decides_the_look(comfy):
    from scripts.train_toy_hicast import (EVAL_SCENES, STYLES, load_toy, scene_frames, style_distance, stylize,
                                          to_images, trained_knobs)
    base, levels, adapter, encoder, _, tokens, trained = load_toy(FOLDER)
    raw, _ = scene_frames(EVAL_SCENES[:3], frames=1)
    _, refs = scene_frames(range(2000, 2002), frames=1)
    x = to_images(raw[:, 0])
    outs = {name: stylize(base, levels, adapter, encoder, tokens, x, refs[name][:, 0], 5, trained_knobs(trained))
            for name in STYLES}
    for name in STYLES:
        target = refs[name][:, 0]
        other = next(n for n in STYLES if n != name)
        # the output made with this style's tokens is nearer this style than the one made with the other's
        assert style_distance(outs[name], target) < style_distance(outs[other], target), name
