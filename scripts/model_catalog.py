"""Every model file the example workflows name: what it is, its ComfyUI folder, where to get it, VRAM.

scripts/workflow_format.py writes these into the UI workflows (each loader's `properties.models`, the way
ComfyUI's own templates do, and one MarkdownNote per workflow saying what to download or train first);
README "Models" is the same table for people. Files no one releases say which of the pack's training
workflows writes them (`train`). A `folder` entry is a model folder (transformers format) downloaded whole
from its page; it has no single-file `properties.models` entry.
"""
MEDIAPIPE_CHOICE = "mediapipe (built in)"
HF_WAN = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
WAN_PAGE = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged"

MODELS = {
    "wan2.1_i2v_480p_14B_fp16.safetensors": dict(
        directory="diffusion_models", url=f"{HF_WAN}/diffusion_models/wan2.1_i2v_480p_14B_fp16.safetensors",
        what="Wan2.1 image-to-video 14B (480p), the DreamStyle base",
        vram="32.8 GB file (fp16); the workflows load it with weight_dtype fp8_e4m3fn: 16.4 GB of weights, so a "
             "24 GB card can hold the whole model (not measured here: no GPU); weight_dtype default keeps fp16, "
             "which such a card only runs partially loaded; the fp8 file wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors on the same page is half the download"),
    "wan2.1_fun_control_1.3B_bf16.safetensors": dict(
        directory="diffusion_models", url=f"{HF_WAN}/diffusion_models/wan2.1_fun_control_1.3B_bf16.safetensors",
        what="Wan2.1 Fun-Control 1.3B: makes the stylized twin of a raw clip (paired data)",
        vram="2.8 GB file (bf16)"),
    "wan_2.1_vae.safetensors": dict(
        directory="vae", url=f"{HF_WAN}/vae/wan_2.1_vae.safetensors", what="Wan2.1 video VAE",
        vram="254 MB file; decoding long 480p clips takes several GB (VAE Decode (Tiled) needs less)"),
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": dict(
        directory="text_encoders", url=f"{HF_WAN}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
        what="UMT5-XXL text encoder (scaled fp8) for Wan", vram="6.7 GB file; ComfyUI moves it off the GPU before sampling"),
    "clip_vision_h.safetensors": dict(
        directory="clip_vision", url=f"{HF_WAN}/clip_vision/clip_vision_h.safetensors",
        what="CLIP-ViT-H vision encoder (style image features for Wan's image branch)", vram="1.3 GB file"),
    "dreamstyle_token_lora.safetensors": dict(
        directory="loras", train="dreamstyle_train_ct_sft",
        what="DreamStyle token-specific LoRA (no public release: train it; any plain Wan2.1 LoRA also loads)",
        vram="training holds the 14B base (docs/dreamstyle_training.md)"),
    "v1-5-pruned-emaonly-fp16.safetensors": dict(
        directory="diffusion_models",
        url="https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/v1-5-pruned-emaonly-fp16.safetensors",
        what="Stable Diffusion 1.5 (UNETLoader reads the UNet out of the full checkpoint), the HiCAST base",
        vram="2.1 GB file (fp16)"),
    "vae-ft-mse-840000-ema-pruned.safetensors": dict(
        directory="vae",
        url="https://huggingface.co/stabilityai/sd-vae-ft-mse-original/resolve/main/vae-ft-mse-840000-ema-pruned.safetensors",
        what="SD1.5 VAE (ft-MSE)", vram="335 MB file"),
    "clip_l.safetensors": dict(
        directory="text_encoders", url="https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
        what="CLIP ViT-L/14 text encoder (SD1.5's)", vram="246 MB file"),
    "hicast_sd15_edge_adapter.safetensors": dict(
        directory="hicast_adapters", train="hicast_train_adapter",
        what="HiCAST edge adapter for SD1.5 (no public release: train it)", vram="small; training holds SD1.5 frozen plus the adapter (docs/hicast.md)"),
    "hicast_sd15_edge_adapter_style_encoder.safetensors": dict(
        directory="hicast_adapters", train="hicast_train_adapter",
        what="HiCAST style encoder, written next to the adapter it was trained with", vram="small"),
    "hicast_sd15_temporal_layers.safetensors": dict(
        directory="hicast_adapters", train="HiCASTTrainTemporalLayers (node, after hicast_train_adapter)",
        what="HiCAST temporal layers for video (no public release: train them on a clip)",
        vram="small; training holds SD1.5 frozen plus the layers (docs/hicast.md)"),
    "Depth-Anything-V2-Small-hf": dict(
        directory="hicast_depth", folder=True, url="https://huggingface.co/depth-anything/Depth-Anything-V2-Small-hf",
        what="Depth Anything V2 Small, a folder (config.json + model.safetensors): depth maps for HiCAST and the "
             "DreamStyle pair control", vram="99 MB"),
    "vgg19.safetensors": dict(
        directory="hicast_loss_nets",
        get="save torchvision's vgg19 state_dict (ImageNet weights) with safetensors as vgg19.safetensors, or use "
            "https://huggingface.co/timm/vgg19.tv_in1k (model.safetensors, the same weights and keys) renamed",
        what="VGG-19 (torchvision layout, features.N.weight) for HiCAST's content/style losses",
        vram="548 MB file; only the conv trunk to relu5_1 (80 MB) is loaded"),
    "stylemotif_quick.safetensors": dict(
        directory="stylemotif", train="stylemotif_train",
        what="StyleMotif motion model (no public release: train it; the workflow writes this name)",
        vram="small; the quick setting trains on a CPU"),
}


def model_refs(api):
    """[(node id, input name, file name)] for every input of API that reads a catalogued model file (a
    trainer's output_name writes one and is not a reference)."""
    return [(nid, key, value) for nid, node in api.items() for key, value in node["inputs"].items()
            if isinstance(value, str) and value in MODELS and key != "output_name"]


def properties_models(names):
    """ComfyUI template style `properties.models` entries: name, url (when released), directory."""
    return [{"name": n, **({"url": MODELS[n]["url"]} if "url" in MODELS[n] else {}), "directory": MODELS[n]["directory"]}
            for n in names if not MODELS[n].get("folder")]


def note_markdown(api):
    """What to put where before running API: a download line per released file, a training line otherwise."""
    names = sorted({name for _, _, name in model_refs(api)}, key=lambda n: ("url" not in MODELS[n], n))
    if not names:
        return None
    lines = ["## Models this workflow needs", ""]
    for n in names:
        m = MODELS[n]
        where = (f"[download]({m['url']})" if "url" in m else f"get it: {m['get']}" if "get" in m
                 else f"**train it first** with `{m['train']}`")
        if m.get("folder"):
            where = f"[download the whole folder]({m['url']}) into `models/{m['directory']}/{n}/`"
        lines.append(f"- `models/{m['directory']}/{n}`: {m['what']}; {where}. VRAM: {m['vram']}.")
    if any(node["inputs"].get("pose_model") == MEDIAPIPE_CHOICE for node in api.values()):
        lines.append("- HiCAST Pose Map's built-in model comes with the optional mediapipe extra: "
                     "`pip install --no-deps -r requirements-extras.txt`.")
    lines += ["", "Full table: README \"Models\" (UniStyle)."]
    return "\n".join(lines)


def readme_table():
    """The README "Models" table (python -c 'from scripts.model_catalog import readme_table; print(readme_table())')."""
    rows = ["| file | folder | what | where to get it | VRAM / size |", "|---|---|---|---|---|"]
    for n, m in MODELS.items():
        where = (f"[download]({m['url']})" if "url" in m else f"get it: {m['get']}" if "get" in m
                 else f"train it: {m['train']}") + (" (the whole folder)" if m.get("folder") else "")
        rows.append(f"| `{n}` | `{m['directory']}/` | {m['what']} | {where} | {m['vram']} |")
    return "\n".join(rows)
