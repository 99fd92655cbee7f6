"""Write the pack's example workflows: workflows/api/<name>.json (API format, for /prompt and
scripts/batch.py) for the graphs below, and workflows/<name>.json (UI format, for the editor) for every
API graph in workflows/api/ (those written here and those kept there as JSON).

    python scripts/build_workflows.py            # starts a host for /object_info, writes both formats

The graphs name the real checkpoints a user downloads (README: "Models"); scripts/tiny_workflow.py
swaps in the tiny fixtures for tests and the demo.
"""
import glob
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

WAN_I2V = "wan2.1_i2v_480p_14B_fp16.safetensors"
# stored as fp8 at load (16.4 GB of weights instead of 32.8), so a 24 GB card can hold the whole model; default
# keeps fp16, which such a card only runs partially loaded (docs/dreamstyle.md, "Which model files work")
WAN_I2V_DTYPE = "fp8_e4m3fn"
WAN_VAE = "wan_2.1_vae.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
CLIP_VISION = "clip_vision_h.safetensors"
TOKEN_LORA = "dreamstyle_token_lora.safetensors"
NEGATIVE = "blurry, low quality, distorted, static, watermark, text"
# Prompts in the form of DreamStyle's training captions (dreamstyle/condition_sampler.py): text-guided runs
# describe the video's content with the style words (t_sty); style-image and first-frame runs describe the
# content only (t_ns = captions.strip_style(t_sty)). Users replace the content part with their video's.
CONTENT = "a street scene with people walking"


def dreamstyle_graph(text, style_image=False, first_frame=False, long_video=False, prefix="dreamstyle/out"):
    """DreamStyle inference: video (+ text, style image, stylized first frame in any subset) -> video."""
    g = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_I2V, "weight_dtype": WAN_I2V_DTYPE}},
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
                                                                   "overlap": 4, "colour_match": False, **sampling, **cond}}
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
    "dreamstyle_text": (dreamstyle_graph(f"a watercolor painting of {CONTENT}, soft pastel washes, paper texture",
                                         prefix="dreamstyle/text"), "DreamStyle: text-guided video stylization"),
    "dreamstyle_style_image": (dreamstyle_graph(CONTENT, style_image=True, prefix="dreamstyle/style_image"),
                               "DreamStyle: style-image-guided video stylization"),
    "dreamstyle_first_frame": (dreamstyle_graph(CONTENT, first_frame=True, prefix="dreamstyle/first_frame"),
                               "DreamStyle: stylized-first-frame-guided video stylization"),
    "dreamstyle_multi_style": (dreamstyle_graph(f"an ink drawing of {CONTENT}, bold outlines", style_image=True,
                                                first_frame=True, prefix="dreamstyle/multi_style"),
                               "DreamStyle: text + style image + first frame in one pass (multi-style fusion)"),
    "dreamstyle_long_video": (dreamstyle_graph(CONTENT, style_image=True, long_video=True, prefix="dreamstyle/long_video"),
                              "DreamStyle: long video in chunks chained on the stitched frame where each chunk starts"),
}


# 24 GB cards (what the fp8 base targets): 14B, 480x832x81, rank 64 plans 20.6 GB with these
# (dreamstyle/training_memory_plan.py; block granularity, nothing offloaded, no swap: 49.1 GB)
TRAIN_MEMORY_24GB = {"block_swap": 20, "offload_activations": True, "optimizer_offload": True,
                     "checkpoint_granularity": "sublayer"}


def dreamstyle_train_graph(prefix="dreamstyle/trained"):
    """DreamStyle training: CT on the large paired set -> SFT on the curated set from the CT LoRA -> stylize a
    video with the SFT model (style image guidance); both loss curves saved."""
    g = dreamstyle_graph("", style_image=True, prefix=prefix)
    common = {"model": ["1", 0], "vae": ["7", 0], "clip": ["4", 0], "rank": 64, "lr": 4e-5, "batch": 1,
              "accumulation": 16, "ratio": "1:2:1", "seed": 0, "save_every": 250, "resume": True,
              "precision": "bf16", "gradient_checkpointing": True, "token_specific": True,
              **TRAIN_MEMORY_24GB, "overwrite": False, "clip_vision": ["11", 0]}  # the inference graph's CLIP vision (ViT-H, crop center)
    g["19"] = {"class_type": "DreamStyleTrainTokenLoRA",
               "inputs": {**common, "dataset_dir": "dreamstyle_pairs_ct", "stage": "CT", "steps": 6000,
                          "lora_name": "dreamstyle_ct", "init_lora": ""}}
    g["2"] = {"class_type": "DreamStyleTrainTokenLoRA",
              "inputs": {**common, "dataset_dir": "dreamstyle_pairs_sft", "stage": "SFT", "steps": 3000,
                         "lora_name": "dreamstyle_sft", "init_lora": ["19", 1]}}
    g["20"] = {"class_type": "SaveImage", "inputs": {"images": ["19", 2], "filename_prefix": f"{prefix}_loss_ct"}}
    g["21"] = {"class_type": "SaveImage", "inputs": {"images": ["2", 2], "filename_prefix": f"{prefix}_loss_sft"}}
    return g


WORKFLOWS.update({
    "dreamstyle_train_ct_sft": (dreamstyle_train_graph(),
                                "DreamStyle: train a token LoRA (CT -> SFT) and stylize a video with it"),
})


SD15_UNET = "v1-5-pruned-emaonly-fp16.safetensors"      # UNETLoader reads the UNet out of the full checkpoint
SD15_VAE = "vae-ft-mse-840000-ema-pruned.safetensors"
CLIP_L = "clip_l.safetensors"                            # SD1.5's text encoder (OpenAI CLIP ViT-L/14 text model)
HICAST_EDGE_ADAPTER = "hicast_sd15_edge_adapter.safetensors"  # written by hicast_train_adapter
HICAST_STYLE_ENCODER = "hicast_sd15_edge_adapter_style_encoder.safetensors"
HICAST_TEMPORAL = "hicast_sd15_temporal_layers.safetensors"
HICAST_VGG19 = "vgg19.safetensors"  # torchvision's vgg19 weights as safetensors, in models/hicast_loss_nets
HICAST_PROMPT = "an oil painting, thick brush strokes"


def hicast_base(g, prompt):
    """SD1.5 loaders and text: 3 MODEL, 4 VAE, 5 CLIP, 6 positive, 7 negative."""
    g["3"] = {"class_type": "UNETLoader", "inputs": {"unet_name": SD15_UNET, "weight_dtype": "default"}}
    g["4"] = {"class_type": "VAELoader", "inputs": {"vae_name": SD15_VAE}}
    g["5"] = {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP_L, "type": "stable_diffusion",
                                                     "device": "default"}}
    g["6"] = {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["5", 0]}}
    g["7"] = {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["5", 0]}}
    return g


def hicast_stylize(g, model, frames, maps, adapter, encoder, prefix, video=False):
    """Adapters (edge map, weight 1) + style tokens (style image, scale 1) on MODEL, then img2img of FRAMES."""
    g["13"] = {"class_type": "HiCASTApplyStyleAdapters", "inputs": {
        "model": model, "adapter_1": adapter, "map_1": maps, "weight_1": 1.0, "weight_2": 1.0, "weight_3": 1.0,
        "style_encoder": encoder, "style_image": ["2", 0], "style_scale": 1.0}}
    model = ["13", 0]
    if video:
        g["14"] = {"class_type": "HiCASTAdapterLoader", "inputs": {"adapter_name": HICAST_TEMPORAL}}
        g["15"] = {"class_type": "HiCASTApplyTemporalLayers", "inputs": {"model": model, "temporal_layers": ["14", 0]}}
        model = ["15", 0]
    g["16"] = {"class_type": "VAEEncode", "inputs": {"pixels": frames, "vae": ["4", 0]}}
    g["17"] = {"class_type": "KSampler", "inputs": {"model": model, "seed": 0, "steps": 30, "cfg": 7.0,
                                                    "sampler_name": "euler", "scheduler": "normal",
                                                    "positive": ["6", 0], "negative": ["7", 0],
                                                    "latent_image": ["16", 0], "denoise": 0.6}}
    g["18"] = {"class_type": "VAEDecode", "inputs": {"samples": ["17", 0], "vae": ["4", 0]}}
    if video:
        g["19"] = {"class_type": "CreateVideo", "inputs": {"images": ["18", 0], "fps": ["10", 2]}}
        g["20"] = {"class_type": "SaveVideo", "inputs": {"video": ["19", 0], "filename_prefix": prefix,
                                                         "format": "auto", "codec": "auto"}}
    else:
        g["19"] = {"class_type": "SaveImage", "inputs": {"images": ["18", 0], "filename_prefix": prefix}}
    return g


def hicast_graph(video=False):
    """HiCAST AST: content image (or video) + style image + prompt -> stylized image (or video).

    The style goes in once, as style tokens appended to every cross-attention context by
    HiCASTApplyStyleAdapters (c' = [c ; lambda f_s], as in training); the text goes through CLIPTextEncode.
    """
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "hicast_content.png"}},
         "2": {"class_type": "LoadImage", "inputs": {"image": "hicast_style.png"}}}
    hicast_base(g, HICAST_PROMPT)
    g["8"] = {"class_type": "HiCASTAdapterLoader", "inputs": {"adapter_name": HICAST_EDGE_ADAPTER}}
    g["9"] = {"class_type": "HiCASTAdapterLoader", "inputs": {"adapter_name": HICAST_STYLE_ENCODER}}
    frames = ["1", 0]
    if video:
        g["1"] = {"class_type": "LoadVideo", "inputs": {"file": "hicast_input.mp4"}}
        g["10"] = {"class_type": "GetVideoComponents", "inputs": {"video": ["1", 0]}}
        frames = ["10", 0]
    g["11"] = {"class_type": "HiCASTEdgeMap", "inputs": {"image": frames, "method": "canny", "low_threshold": 100,
                                                         "high_threshold": 200, "soft_sigma": 1.5}}
    maps = ["11", 0]
    if video:
        g["12"] = {"class_type": "HiCASTTemporalSmooth", "inputs": {"maps": maps, "frames": frames,
                                                                    "strength": 0.7, "motion_threshold": 0.04}}
        maps = ["12", 0]
    else:
        g["12"] = {"class_type": "SaveImage", "inputs": {"images": maps, "filename_prefix": "hicast/edge_map"}}
    return hicast_stylize(g, ["3", 0], frames, maps, ["8", 0], ["9", 0],
                          "hicast/video_ast" if video else "hicast/image_ast", video)


def hicast_train_graph():
    """HiCAST stage 2: train the edge adapter + style encoder on content images and a style set (the style image
    batch, plus any images in the optional style folder; base frozen, empty-prompt context, VGG-19 losses), write
    them to models/hicast_adapters, and preview the trained pair."""
    g = {"1": {"class_type": "LoadImage", "inputs": {"image": "hicast_content.png"}},
         "2": {"class_type": "LoadImage", "inputs": {"image": "hicast_style.png"}}}
    hicast_base(g, "")
    g["11"] = {"class_type": "HiCASTEdgeMap", "inputs": {"image": ["1", 0], "method": "canny", "low_threshold": 100,
                                                         "high_threshold": 200, "soft_sigma": 1.5}}
    g["12"] = {"class_type": "HiCASTTrainAdapter", "inputs": {
        "model": ["3", 0], "vae": ["4", 0], "content_images": ["1", 0], "maps": ["11", 0], "style_images": ["2", 0],
        "conditioning": ["6", 0], "output_name": HICAST_EDGE_ADAPTER, "overwrite": False, "map_type": "edge",
        "loss_net": HICAST_VGG19, "steps": 2000, "batch_size": 1, "learning_rate": 1e-4, "seed": 0,
        "style_folder": "", "clip_source": "image_embeds"}}
    return hicast_stylize(g, ["3", 0], ["1", 0], ["11", 0], ["12", 0], ["12", 1], "hicast/train_preview")


HICAST_WORKFLOWS = {
    "hicast_image_ast": (hicast_graph(), "HiCAST: image style transfer with an edge adapter, style image and prompt"),
    "hicast_video_ast": (hicast_graph(video=True),
                         "HiCAST: video style transfer with smoothed edge maps, style image and temporal layers"),
    "hicast_train_adapter": (hicast_train_graph(),
                             "HiCAST: train an edge adapter + style encoder (stage 2), then preview them"),
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
    graphs = {**WORKFLOWS, **HICAST_WORKFLOWS}
    for name, (graph, _title) in graphs.items():
        write_json(os.path.join(ROOT, "workflows", "api", f"{name}.json"), graph)
    for api_path in sorted(glob.glob(os.path.join(ROOT, "workflows", "api", "*.json"))):
        name = os.path.basename(api_path)[:-5]
        ui_path = os.path.join(ROOT, "workflows", f"{name}.json")
        title = graphs[name][1] if name in graphs else ui_title(ui_path)
        write_json(ui_path, api_to_ui(json.load(open(api_path)), object_info, title))


def ui_title(path):
    """The title a UI workflow carries, kept when it is rewritten from its API twin."""
    if not os.path.exists(path):
        return None
    return json.load(open(path)).get("extra", {}).get("title")


def write_json(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    print("wrote", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
