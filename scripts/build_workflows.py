"""Write the pack's example workflows: workflows/api/<name>.json (API format, for /prompt and
scripts/batch.py) and workflows/<name>.json (UI format, for the editor), from the graphs below.

    python scripts/build_workflows.py            # starts a host for /object_info, writes both formats

The graphs name the real checkpoints a user downloads (README: "Models"); scripts/tiny_workflow.py
swaps in the tiny fixtures for tests and the demo.
"""
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WAN_I2V = "wan2.1_i2v_480p_14B_fp16.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
CLIP_VISION = "clip_vision_h.safetensors"
TOKEN_LORA = "dreamstyle_token_lora.safetensors"
NEGATIVE = "blurry, low quality, distorted, static, watermark, text"


def dreamstyle_graph(text, style_image=False, first_frame=False, long_video=False, prefix="dreamstyle/out"):
    """DreamStyle inference: video (+ text, style image, stylized first frame in any subset) -> video."""
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_I2V, "weight_dtype": "default"}},
        "2": {"class_type": "DreamStyleTokenLoRALoader", "inputs": {"model": ["1", 0], "lora_name": TOKEN_LORA,
                                                                    "strength": 1.0}},
        "3": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["2", 0], "shift": 5.0}},
        "4": {"class_type": "CLIPLoader", "inputs": {"clip_name": UMT5, "type": "wan", "device": "default"}},
        "5": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 0]}},
        "7": {"class_type": "VAELoader", "inputs": {"vae_name": WAN_VAE}},
        "8": {"class_type": "LoadVideo", "inputs": {"file": "dreamstyle_input.mp4"}},
        "9": {"class_type": "GetVideoComponents", "inputs": {"video": ["8", 0]}},
    }
    cond = {"positive": ["5", 0], "negative": ["6", 0], "vae": ["7", 0], "video": ["9", 0]}
    if style_image:
        g["10"] = {"class_type": "LoadImage", "inputs": {"image": "dreamstyle_style.png"}}
        g["11"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": CLIP_VISION}}
        g["12"] = {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["11", 0], "image": ["10", 0],
                                                                "crop": "center"}}
        cond.update(style_image=["10", 0], clip_vision_output=["12", 0])
    if first_frame:
        g["13"] = {"class_type": "LoadImage", "inputs": {"image": "dreamstyle_first_frame.png"}}
        cond["first_frame"] = ["13", 0]
    sampling = {"seed": 42, "steps": 30, "cfg": 5.0, "sampler_name": "uni_pc", "scheduler": "simple"}
    if long_video:
        g["14"] = {"class_type": "DreamStyleLongVideo", "inputs": {"model": ["3", 0], "chunk_frames": 81,
                                                                   "overlap": 4, **sampling, **cond}}
        images = ["14", 0]
    else:
        g["14"] = {"class_type": "DreamStyleConditioning", "inputs": cond}
        g["15"] = {"class_type": "KSampler", "inputs": {"model": ["3", 0], **sampling, "positive": ["14", 0],
                                                        "negative": ["14", 1], "latent_image": ["14", 2],
                                                        "denoise": 1.0}}
        g["16"] = {"class_type": "DreamStyleDecode", "inputs": {"vae": ["7", 0], "samples": ["15", 0]}}
        images = ["16", 0]
    g["17"] = {"class_type": "CreateVideo", "inputs": {"images": images, "fps": ["9", 2]}}
    g["18"] = {"class_type": "SaveVideo", "inputs": {"video": ["17", 0], "filename_prefix": prefix, "format": "auto",
                                                     "codec": "auto"}}
    return g


WORKFLOWS = {
    "dreamstyle_text": (dreamstyle_graph("a watercolor painting, soft washes of colour, paper texture",
                                         prefix="dreamstyle/text"), "DreamStyle: text-guided video stylization"),
    "dreamstyle_style_image": (dreamstyle_graph("", style_image=True, prefix="dreamstyle/style_image"),
                               "DreamStyle: style-image-guided video stylization"),
    "dreamstyle_first_frame": (dreamstyle_graph("", first_frame=True, prefix="dreamstyle/first_frame"),
                               "DreamStyle: stylized-first-frame-guided video stylization"),
    "dreamstyle_multi_style": (dreamstyle_graph("an ink drawing with bold outlines", style_image=True,
                                                first_frame=True, prefix="dreamstyle/multi_style"),
                               "DreamStyle: text + style image + first frame in one pass (multi-style fusion)"),
    "dreamstyle_long_video": (dreamstyle_graph("", style_image=True, long_video=True, prefix="dreamstyle/long_video"),
                              "DreamStyle: long video in chunks chained on the last stylized frame"),
}


def main():
    from scripts import host
    from scripts.comfy_client import ComfyClient
    from scripts.make_fixtures import ensure_fixtures
    from scripts.workflow_format import api_to_ui
    base = os.path.join(ROOT, "build", "workflow-host")
    port = host.start(base, models=ensure_fixtures(), test_nodes=False)
    try:
        object_info = ComfyClient(f"127.0.0.1:{port}").get_json("/object_info")
    finally:
        host.stop(base)
    os.makedirs(os.path.join(ROOT, "workflows", "api"), exist_ok=True)
    for name, (graph, title) in WORKFLOWS.items():
        for path, data in ((os.path.join(ROOT, "workflows", "api", f"{name}.json"), graph),
                           (os.path.join(ROOT, "workflows", f"{name}.json"), api_to_ui(graph, object_info, title))):
            with open(path, "w") as f:
                json.dump(data, f, indent=1)
                f.write("\n")
            print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
