"""The pack's own torch modules live in ComfyUI's memory manager during a run, like ComfyUI's models:
comfy.model_management.current_loaded_models (read by the test-only LoadedModels node in the server process)
lists HiCAST's style adapter and style encoder next to the SD1.5 UNet after the sampler, and the StyleMotif
model after a stylized motion is rendered."""
import json
import os

import numpy as np
from PIL import Image

from scripts.tiny_workflow import tiny_workflow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_hicast_modules_are_in_current_loaded_models_after_a_run(server):
    rng = np.random.default_rng(1)
    for name, size in (("memory_content.png", 64), ("memory_style.png", 48)):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(os.path.join(server.input_dir, name))
    with open(os.path.join(ROOT, "workflows", "api", "hicast_image_ast.json")) as f:
        wf = tiny_workflow(json.load(f), steps=2, inputs={"hicast_content.png": "memory_content.png",
                                                          "hicast_style.png": "memory_style.png"})
    decoded = next(nid for nid, n in wf.items() if n["class_type"] == "VAEDecode")
    wf["900"] = {"class_type": "LoadedModels", "inputs": {"after": [decoded, 0], "record": "memory_hicast"}}
    result = server.run(wf)
    assert result.ok, result.describe_error()
    with open(os.path.join(server.output_dir, "memory_hicast.json")) as f:
        loaded = json.load(f)
    assert any(n.endswith("hicast.style_adapter.StyleAdapter") for n in loaded), loaded
    assert any(n.endswith("hicast.style_encoder.StyleEncoder") for n in loaded), loaded
    assert any(n.startswith("comfy.model_base.") for n in loaded), loaded  # the UNet, for comparison


def test_stylemotif_model_is_in_current_loaded_models_after_a_run(server, stylemotif_samples):
    with open(os.path.join(ROOT, "workflows", "api", "stylemotif_text_style_motion.json")) as f:
        wf = tiny_workflow(json.load(f), steps=2)
    rendered = next(nid for nid, n in wf.items() if n["class_type"] == "StyleMotifRenderSkeleton")
    wf["900"] = {"class_type": "LoadedModels", "inputs": {"after": [rendered, 0], "record": "memory_stylemotif"}}
    result = server.run(wf)
    assert result.ok, result.describe_error()
    with open(os.path.join(server.output_dir, "memory_stylemotif.json")) as f:
        loaded = json.load(f)
    assert any(n.endswith("stylemotif.model.StyleMotif") for n in loaded), loaded
