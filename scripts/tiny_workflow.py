"""Swap the real checkpoints of an API-format workflow for the tiny fixtures (tests and the demo).

Each real file name in TINY_FILES (any input that names one: UNETLoader, VAELoader, HiCASTAdapterLoader...)
becomes its tiny fixture of the same architecture; CLIPLoader becomes a test-only loader of its type
(TinyCLIPLoader for stable_diffusion's CLIP-L, else TinyUMT5Loader); CLIPVisionLoader + CLIPVisionEncode
become TinyCLIPVisionEncode of the same image, and a CLIPVisionLoader that feeds other nodes (the DreamStyle
pair filter) becomes TinyCLIPVisionLoader; the token LoRA is `lora_name`; samplers and trainers run at
most `steps` steps; a trainer's block_swap is at most 1 (the tiny Wan has 2 blocks). The graph is otherwise
untouched.
"""
import copy

from scripts.build_workflows import (HICAST_EDGE_ADAPTER, HICAST_STYLE_ENCODER, HICAST_TEMPORAL, HICAST_VGG19,
                                     SD15_UNET, SD15_VAE)

TINY_FILES = {  # real file name (as the example workflows name it) -> tiny fixture of the same architecture
    "wan2.1_i2v_480p_14B_fp16.safetensors": "tiny_wan21_i2v.safetensors",
    "wan2.1_fun_control_1.3B_bf16.safetensors": "tiny_wan21_fun_control.safetensors",
    "wan_2.1_vae.safetensors": "tiny_wan21_vae.safetensors",
    "Depth-Anything-V2-Small-hf": "tiny_depth_anything",
    SD15_UNET: "tiny_sd15_unet.safetensors",
    SD15_VAE: "tiny_sd15_taesd.safetensors",
    HICAST_EDGE_ADAPTER: "tiny_sd15_edge_adapter.safetensors",
    HICAST_STYLE_ENCODER: "tiny_sd15_style_encoder.safetensors",
    HICAST_TEMPORAL: "tiny_sd15_temporal_layers.safetensors",
    HICAST_VGG19: "tiny_vgg19_layout.safetensors",
    "stylemotif_quick.safetensors": "tiny_stylemotif.safetensors",  # what the stylemotif_train workflow writes
}
TINY_CLIP = {"stable_diffusion": ("TinyCLIPLoader", "tiny_clip_l.safetensors")}  # CLIPLoader type -> test loader


def tiny_files(api):
    """A copy of API with every real model file name swapped for its tiny fixture, nothing else changed."""
    g = copy.deepcopy(api)
    for node in g.values():
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value in TINY_FILES:
                node["inputs"][key] = TINY_FILES[value]
    return g


def tiny_workflow(api, lora_name="tiny_dreamstyle_token_lora.safetensors", steps=2, inputs=None, size=None):
    """A copy of `api` for the tiny fixtures; `inputs` maps an input file name in the graph to another;
    `size` (width, height), if given, replaces every literal width/height input."""
    g = tiny_files(api)
    inputs = inputs or {}
    for nid in list(g):
        node = g[nid]
        kind, args = node["class_type"], node["inputs"]
        if kind == "CLIPLoader":
            loader, name = TINY_CLIP.get(args.get("type"), ("TinyUMT5Loader", "tiny_umt5.safetensors"))
            g[nid] = {"class_type": loader, "inputs": {"clip_name": name}}
        elif kind == "CLIPVisionEncode":
            g[nid] = {"class_type": "TinyCLIPVisionEncode", "inputs": {"image": args["image"], "seed": 0}}
        elif kind == "DreamStyleTokenLoRALoader":
            args["lora_name"] = lora_name
        elif kind == "DreamStyleTrainTokenLoRA":  # the tiny/toy Wan has 2 blocks: swap one of them
            args["block_swap"] = min(args.get("block_swap", 0), 1)
            args["steps"] = min(args["steps"], steps)
        elif "steps" in args and not isinstance(args["steps"], list):
            args["steps"] = min(args["steps"], steps)
        if size is not None:
            for key, value in zip(("width", "height"), size):
                if isinstance(args.get(key), int):
                    args[key] = value
        for key in ("image", "file"):
            if isinstance(args.get(key), str) and args[key] in inputs:
                args[key] = inputs[args[key]]
    linked = {v[0] for node in g.values() for v in node["inputs"].values() if isinstance(v, list) and len(v) == 2}
    for nid in [n for n, node in g.items() if node["class_type"] == "CLIPVisionLoader"]:
        if nid in linked:
            g[nid] = {"class_type": "TinyCLIPVisionLoader", "inputs": {"clip_name": "tiny_clip_vision.safetensors"}}
        else:
            del g[nid]
    return g
