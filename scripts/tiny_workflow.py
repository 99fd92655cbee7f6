"""Swap the real checkpoints of an API-format workflow for the tiny fixtures (tests and the demo).

Each real checkpoint name in TINY_FILES becomes its tiny fixture; CLIPLoader becomes the test-only TinyUMT5Loader;
CLIPVisionLoader + CLIPVisionEncode become TinyCLIPVisionEncode of the same image; the token LoRA is
`lora_name`; samplers run `steps` steps. The graph is otherwise untouched.
"""
import copy

TINY_FILES = {  # real file name (as the example workflows name it) -> tiny fixture of the same architecture
    "wan2.1_i2v_480p_14B_fp16.safetensors": "tiny_wan21_i2v.safetensors",
    "wan2.1_fun_control_1.3B_bf16.safetensors": "tiny_wan21_fun_control.safetensors",
    "wan_2.1_vae.safetensors": "tiny_wan21_vae.safetensors",
}


def tiny_workflow(api, lora_name="tiny_dreamstyle_token_lora.safetensors", steps=2, inputs=None):
    """A copy of `api` for the tiny fixtures; `inputs` maps an input file name in the graph to another."""
    g = copy.deepcopy(api)
    inputs = inputs or {}
    for nid in list(g):
        node = g[nid]
        kind, args = node["class_type"], node["inputs"]
        for key, value in args.items():
            if isinstance(value, str) and value in TINY_FILES:
                args[key] = TINY_FILES[value]
        if kind == "CLIPLoader":
            g[nid] = {"class_type": "TinyUMT5Loader", "inputs": {"clip_name": "tiny_umt5.safetensors"}}
        elif kind == "CLIPVisionEncode":
            g[nid] = {"class_type": "TinyCLIPVisionEncode", "inputs": {"image": args["image"], "seed": 0}}
        elif kind == "DreamStyleTokenLoRALoader":
            args["lora_name"] = lora_name
        elif "steps" in args and not isinstance(args["steps"], list):
            args["steps"] = min(args["steps"], steps)
        for key in ("image", "file"):
            if isinstance(args.get(key), str) and args[key] in inputs:
                args[key] = inputs[args[key]]
    for nid in [n for n, node in g.items() if node["class_type"] == "CLIPVisionLoader"]:
        del g[nid]
    return g
