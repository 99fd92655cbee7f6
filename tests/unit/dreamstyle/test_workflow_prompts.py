"""The shipped DreamStyle inference workflows prompt in the form of the training captions
(dreamstyle/condition_sampler.py): text-guided runs with a style caption t_sty, style-image and
first-frame runs with its style-free form t_ns, and CLIP-vision through the stock encoder with a center crop."""
import json
import os

from dreamstyle.captions import strip_style

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def graph(name):
    with open(os.path.join(ROOT, "workflows", "api", f"dreamstyle_{name}.json")) as f:
        return json.load(f)


def positive(g):
    cond = next(n for n in g.values() if n["class_type"] in ("DreamStyleConditioning", "DreamStyleLongVideo"))
    return g[cond["inputs"]["positive"][0]]["inputs"]["text"]


def test_text_runs_use_t_sty_and_image_runs_its_style_free_form():
    t_sty = positive(graph("text"))
    t_ns = strip_style(t_sty).text
    assert t_ns and t_ns != t_sty  # the text prompt carries style words on top of the content
    for name in ("style_image", "first_frame", "long_video"):
        assert positive(graph(name)) == t_ns, name
    assert strip_style(positive(graph("multi_style"))).text == t_ns


def test_style_image_runs_encode_clip_vision_with_the_stock_node_and_a_center_crop():
    for name in ("style_image", "multi_style", "long_video"):
        g = graph(name)
        enc = [n for n in g.values() if n["class_type"] == "CLIPVisionEncode"]
        assert len(enc) == 1 and enc[0]["inputs"]["crop"] == "center", name
    for name in ("text", "first_frame"):  # no style image: no CLIP-vision, as WanImageToVideo without one
        assert not any(n["class_type"] == "CLIPVisionEncode" for n in graph(name).values()), name
