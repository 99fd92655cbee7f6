"""`make demo`: start ComfyUI on 127.0.0.1 with UniStyle and the tiny fixtures, queue the pack's example
workflows through the HTTP API, and collect real outputs in demo_output/.

Inputs are made here (a procedural clip with known motion, a style image, a stylized first frame).
Each workflows/api/*.json runs with its checkpoints swapped for the tiny fixtures
(scripts/tiny_workflow.py); a workflow whose input files the demo cannot provide is skipped and says so.
"""
import glob
import json
import os
import shutil
import sys
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from dreamstyle.dataset_reader import iter_pairs  # noqa: E402
from scripts import host  # noqa: E402
from scripts.comfy_client import ComfyClient  # noqa: E402
from scripts.make_fixtures import ensure_fixtures  # noqa: E402
from scripts.media import read_video, write_video  # noqa: E402
from scripts.tiny_workflow import tiny_workflow  # noqa: E402

OUT = os.path.join(ROOT, "demo_output")
BASE = os.path.join(ROOT, "build", "demo-host")
# the toy DreamStyle weights trained by scripts/train_toy_dreamstyle.py (fixture scripts/fixtures/dreamstyle_toy.py)
TOY = {"tiny_wan21_i2v.safetensors": "toy_dreamstyle_wan21_i2v.safetensors",
       "tiny_wan21_vae.safetensors": "toy_dreamstyle_wan21_vae.safetensors"}
TOY_LORA = "toy_dreamstyle_token_lora.safetensors"
DEMO_STYLE = "thermal"  # one of the toy's styles: the style image and first frame of the DreamStyle demo


def moving_shapes(frames=17, h=64, w=96, seed=0):
    """A clip with known motion: a square sliding right and a disc bouncing, on a gradient."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    bg = np.stack([xx / w * 120 + 40, yy / h * 80 + 60, np.full_like(xx, 90.0)], -1)
    video = np.repeat(bg[None], frames, 0) + rng.normal(0, 3, (frames, h, w, 3))
    for t in range(frames):
        x0 = 4 + 4 * t
        video[t, 12:36, x0:x0 + 24] = (230, 190, 40)
        cy, cx = 44 - 10 * abs(np.sin(t / 3)), 70
        video[t][(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = (40, 80, 220)
    return np.clip(video, 0, 255).astype(np.uint8)


def style_image(h=64, w=64):
    """Diagonal hatching in ink colours: an unmistakable style reference."""
    yy, xx = np.mgrid[:h, :w]
    ink = ((xx + yy) // 4) % 2 == 0
    img = np.where(ink[..., None], np.array([30, 30, 60]), np.array([235, 225, 200]))
    return img.astype(np.uint8)


def dreamstyle_inputs(input_dir, style=DEMO_STYLE):
    """The DreamStyle inputs from the toy's own domain: scenes of the synthetic benchmark that toy training
    held out (never seen), a reference of STYLE as the style image, and the clip's first frame in STYLE."""
    from dreamstyle.synthetic_benchmark import heldout_scenes, scene_seed, style_references
    from dreamstyle.synthetic_scenes import make_scene
    from dreamstyle.synthetic_styles import STYLES
    from scripts.train_toy_dreamstyle import FRAMES, HELDOUT, SCENES, SIZE, STYLES as TOY_STYLES
    if style not in TOY_STYLES:
        raise ValueError(f"style: the toy was trained on {TOY_STYLES}, got {style!r}")
    held = sorted(heldout_scenes(SCENES, HELDOUT, 0))
    clip = make_scene(scene_seed(0, held[0]), FRAMES, SIZE, SIZE).render()  # the length the toy was trained on
    write_video(os.path.join(input_dir, "dreamstyle_input.mp4"), clip)
    long_clip = make_scene(scene_seed(0, held[1]), 33, SIZE, SIZE).render()
    write_video(os.path.join(input_dir, "dreamstyle_long_input.mp4"), long_clip)
    Image.fromarray(style_references(style, 1, [0, 99])[0]).save(os.path.join(input_dir, "dreamstyle_style.png"))
    Image.fromarray(STYLES[style].apply(clip[:1])[0]).save(os.path.join(input_dir, "dreamstyle_first_frame.png"))


def demo_inputs(input_dir):
    """Write the demo's input files; returns {name a workflow uses: file name in input_dir}."""
    os.makedirs(input_dir, exist_ok=True)
    dreamstyle_inputs(input_dir)
    clip = moving_shapes()
    write_video(os.path.join(input_dir, "dreamstyle_raw.mp4"), moving_shapes(frames=33, h=48, w=64, seed=2))
    write_video(os.path.join(input_dir, "hicast_input.mp4"), clip[:9])
    Image.fromarray(clip[0]).save(os.path.join(input_dir, "hicast_content.png"))
    Image.fromarray(style_image()).save(os.path.join(input_dir, "hicast_style.png"))
    from dreamstyle.synthetic_benchmark import build_synthetic_benchmark
    for name in ("dreamstyle_pairs_ct", "dreamstyle_pairs_sft"):  # the DreamStyle training workflow's paired sets
        build_synthetic_benchmark(os.path.join(os.path.dirname(input_dir), "output", name), scenes=2,
                                  styles=["palette", "thermal"], frames=5, height=64, width=64, refs=2, heldout=0.0)
    samples = os.path.join(input_dir, "samples")  # StyleMotif's sample motions (StyleMotifLoadMotion reads input/)
    shutil.copytree(os.path.join(ensure_fixtures(), "stylemotif", "samples"), samples, dirs_exist_ok=True)
    return {**{name: name for name in os.listdir(input_dir)}, **{f"samples/{n}": f"samples/{n}" for n in os.listdir(samples)}}


def referenced_inputs(api):
    return {v for node in api.values() if node["class_type"] in ("LoadImage", "LoadVideo")
            for k, v in node["inputs"].items() if k in ("image", "file") and isinstance(v, str)}


def contact_sheet(rows, path, cell=96):
    """rows: [(label, uint8 [N, H, W, 3])] -> one PNG with up to 6 evenly spaced frames per row; a label
    is written whole (the label column fits the longest one)."""
    from PIL import ImageDraw, ImageFont
    cols = 6
    font = ImageFont.load_default(size=13)  # a FreeType font: the bitmap default squeezes out the spaces
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left = 16 + max(int(draw.textlength(label, font=font)) for label, _ in rows)
    sheet = Image.new("RGB", (left + cols * (cell + 4), len(rows) * (cell + 8) + 8), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(rows):
        y = 8 + r * (cell + 8)
        draw.text((6, y + cell // 2 - 7), label, fill=(0, 0, 0), font=font)
        for c, i in enumerate(np.linspace(0, len(frames) - 1, min(cols, len(frames))).round().astype(int)):
            im = Image.fromarray(frames[i])
            im.thumbnail((cell, cell))
            sheet.paste(im, (left + c * (cell + 4), y))
    sheet.save(path)


def still(path):
    return np.asarray(Image.open(path).convert("RGB"))[None]


def animated_webp(frames, path, size=256, fps=20):
    """uint8 [N, H, W, 3] -> an animated WebP, each frame scaled to SIZE on its long side (readable)."""
    ims = [Image.fromarray(f) for f in frames]
    scale = size / max(ims[0].size)
    ims = [im.resize((round(im.width * scale), round(im.height * scale)), Image.NEAREST) for im in ims]
    ims[0].save(path, save_all=True, append_images=ims[1:], duration=round(1000 / fps), loop=0, lossless=True)


def hicast_toy_rows(scenes=4):
    """HiCAST with the toy-trained weights (assets/hicast_toy, scripts/train_toy_hicast.py): held-out scenes,
    stylized toward DEMO_STYLE from held-out references, and the exact DEMO_STYLE version (x3, nearest)."""
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    from scripts.train_toy_hicast import EVAL_SCENES, load_toy, scene_frames, stylize, to_images, to_u8, trained_knobs
    base, levels, adapter, encoder, _, tokens, trained = load_toy(os.path.join(ROOT, "assets", "hicast_toy"))
    raw, looks = scene_frames(EVAL_SCENES[:scenes], frames=1)
    _, refs = scene_frames(range(2000, 2004), frames=1)
    out = to_u8(stylize(base, levels, adapter, encoder, tokens, to_images(raw[:, 0]), refs[DEMO_STYLE][:, 0], 0,
                        trained_knobs(trained)))
    big = lambda ims: ims.repeat(3, axis=1).repeat(3, axis=2)  # noqa: E731
    return [("HiCAST toy-trained: held-out content", big(raw[:, 0])),
            (f"HiCAST toy-trained: stylized ({DEMO_STYLE} references)", big(out)),
            (f"HiCAST toy-trained: exact {DEMO_STYLE} (ground truth)", big(looks[DEMO_STYLE][:, 0]))]


def family_rows(outputs, input_dir):
    """Before/after rows of the overview for HiCAST and StyleMotif, from the demo's saved files.

    outputs: {workflow name: [absolute paths of its output files]}."""
    rows = []
    image = [p for p in outputs.get("hicast_image_ast", []) if os.path.basename(p).startswith("image_ast")]
    edges = [p for p in outputs.get("hicast_image_ast", []) if os.path.basename(p).startswith("edge_map")]
    if image:
        rows += [("HiCAST content image", still(os.path.join(input_dir, "hicast_content.png"))),
                 ("HiCAST style image", still(os.path.join(input_dir, "hicast_style.png")))]
        rows += [("HiCAST edge map", still(p)) for p in edges[:1]]
        rows.append(("HiCAST stylized image (random tiny weights)", still(image[0])))
        if os.path.exists(os.path.join(ROOT, "assets", "hicast_toy", "eval.json")):  # trained by train_toy_hicast.py
            rows += hicast_toy_rows()
    video = [p for p in outputs.get("hicast_video_ast", []) if p.endswith(".mp4")]
    if video:
        rows += [("HiCAST input video", read_video(os.path.join(input_dir, "hicast_input.mp4"))),
                 ("HiCAST stylized video (random tiny weights)", read_video(video[0]))]
    for name in ("stylemotif_text_style_motion", "stylemotif_style_transfer", "stylemotif_text_style_blend"):
        frames = sorted(p for p in outputs.get(name, []) if p.endswith(".png"))
        if frames:
            rows.append((f"StyleMotif {name.replace('stylemotif_', '').replace('_', ' ')} (tiny weights)",
                         np.concatenate([still(p) for p in frames])))
    return rows


def main():
    t0 = time.time()
    models = ensure_fixtures()
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    shutil.rmtree(os.path.join(BASE, "output"), ignore_errors=True)  # no pairs or files left from an earlier run
    available = demo_inputs(os.path.join(BASE, "input"))
    print(f"[demo] starting ComfyUI on 127.0.0.1 (log: {os.path.join(BASE, 'comfy.log')})")
    port = host.start(BASE, models=models, test_nodes=True)
    client = ComfyClient(f"127.0.0.1:{port}", timeout=1800)
    from dreamstyle.synthetic_styles import STYLES
    clip = read_video(os.path.join(BASE, "input", "dreamstyle_input.mp4"))
    summary, outputs, pair_rows = {}, {}, []
    sheet_rows = [("DreamStyle input clip (held out)", clip),
                  (f"DreamStyle {DEMO_STYLE} (exact target)", STYLES[DEMO_STYLE].apply(clip))]
    try:
        for path in sorted(glob.glob(os.path.join(ROOT, "workflows", "api", "*.json"))):
            name = os.path.basename(path)[:-5]
            api = json.load(open(path))
            overrides = {"dreamstyle_input.mp4": "dreamstyle_long_input.mp4"} if "long_video" in name else {}
            missing = sorted(f for f in referenced_inputs(api) if overrides.get(f, f) not in available)
            if missing:
                print(f"[demo] {name}: skipped, the demo has no input {', '.join(missing)}")
                summary[name] = {"skipped": f"no demo input {', '.join(missing)}"}
                continue
            inference = name.startswith("dreamstyle_") and not name.startswith("dreamstyle_train")
            size = None if name.startswith("stylemotif_") else (64, 64) if name.startswith("dreamstyle_") else (64, 48)
            wf = tiny_workflow(api, lora_name=TOY_LORA, steps=12 if inference else 4, inputs=overrides, size=size)
            for node in wf.values():
                for key in ("unet_name", "vae_name"):  # the trained toy Wan instead of the random tiny one
                    if node["inputs"].get(key) in TOY:
                        node["inputs"][key] = TOY[node["inputs"][key]]
                if inference and "cfg" in node["inputs"]:  # the toy never saw an empty caption: no guidance
                    node["inputs"]["cfg"] = 1.0
                if node["class_type"] == "DreamStyleLongVideo":
                    node["inputs"].update(chunk_frames=5, overlap=1)  # chunks of the toy's trained length
                if node["class_type"] == "DreamStylePairFilter":  # the tiny CLIP vision is random: keep every pair
                    node["inputs"].update(min_style=-1.0, min_content=-1.0)
                if node["class_type"] == "HiCASTDepthMap":
                    node["inputs"]["resolution"] = 70  # the clip is 64x64
                if node["class_type"] == "StyleMotifTrain":  # the demo's own model: a rerun replaces it
                    node["inputs"]["overwrite"] = True
                if node["class_type"] in ("HiCASTTrainAdapter", "HiCASTTrainTemporalLayers"):  # never the fixture's name
                    node["inputs"].update(overwrite=True, output_name="demo_" + os.path.basename(node["inputs"]["output_name"]))
                if node["class_type"] == "DreamStyleTrainTokenLoRA":
                    node["inputs"].pop("clip_vision", None)  # the tiny CLIP vision (32 wide) does not fit the toy Wan
                    node["inputs"].update(rank=4, lr=1e-4, accumulation=1, save_every=0, precision="fp32",
                                          overwrite=True, lora_name="demo_" + node["inputs"]["lora_name"])
            result = client.run(wf)
            if not result.ok:
                print(f"[demo] {name}: FAILED: {result.describe_error()}")
                summary[name] = {"error": result.describe_error()}
                continue
            dest = os.path.join(OUT, name)
            os.makedirs(dest, exist_ok=True)
            files = []
            for kind, sub, fname in result.files:
                src = os.path.join(BASE, kind, sub, fname)
                shutil.copy(src, os.path.join(dest, fname))
                files.append(os.path.join(name, fname))
                outputs.setdefault(name, []).append(os.path.join(dest, fname))
                if fname.endswith(".mp4") and name.startswith("dreamstyle_") and "long_video" not in name:
                    sheet_rows.append((f"DreamStyle {name.replace('dreamstyle_', '').replace('_', ' ')} (toy weights)",
                                       read_video(src)))
            for node in wf.values():  # a dataset folder written under output/ (dreamstyle_build_pairs) is shown too
                folder = os.path.join(BASE, "output", str(node["inputs"].get("dataset_dir", "")))
                if node["class_type"] == "DreamStyleSavePair" and os.path.isdir(folder):
                    shutil.copytree(folder, os.path.join(dest, os.path.basename(folder)), dirs_exist_ok=True)
                    files.append(os.path.join(name, os.path.basename(folder)) + "/")
                    for pair in iter_pairs(folder):  # the pairs on the sheet: raw, stylized, control
                        pair_rows += [(f"pair {pair.id}: {kind}", load()) for kind, load in (
                            ("raw", pair.load_raw), ("stylized", pair.load_stylized), ("control", pair.load_control))]
            renders = sorted(p for p in outputs.get(name, []) if p.endswith(".png") and name.startswith("stylemotif_"))
            if renders:
                animated_webp(np.concatenate([still(p) for p in renders]), os.path.join(OUT, f"{name}.webp"))
            summary[name] = {"files": files, "seconds": round(result.seconds, 1)}
            print(f"[demo] {name}: {len(files)} file(s) in {result.seconds:.1f}s -> {dest}")
    finally:
        host.stop(BASE)
    if len(sheet_rows) > 1:
        contact_sheet(sheet_rows, os.path.join(OUT, "dreamstyle_overview.png"))
    if pair_rows:  # dreamstyle_build_pairs: each pair's raw and stylized video under the same control
        contact_sheet(pair_rows, os.path.join(OUT, "dreamstyle_pairs.png"))
    family = family_rows(outputs, os.path.join(BASE, "input"))
    if family or pair_rows:
        contact_sheet(sheet_rows + pair_rows + family, os.path.join(OUT, "overview.png"))
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    failed = [n for n, s in summary.items() if "error" in s]
    print(f"[demo] done in {time.time() - t0:.0f}s: outputs in {OUT} (summary.json, overview.png: each family's "
          "before/after; stylemotif_*.webp: the skeletons animated)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
