"""Fine-tune StyleMotif's style branch from the command line (the StyleMotifFineTuneStyle node's core).

    python scripts/train_stylemotif.py BASE.safetensors OUT.safetensors --clip clip_l.safetensors \
        --dataset path/to/100STYLE [--stylization-steps 1000 --alignment-steps 200 --style-pretrain-steps 0]
    python scripts/train_stylemotif.py BASE.safetensors OUT.safetensors --hash-text --dataset procedural

BASE: a StyleMotif model file (e.g. `python -m stylemotif.import_mld mld.ckpt BASE.safetensors`).
--clip: the CLIP-L text encoder of the base's text space, loaded with ComfyUI's own loader (captions and
style descriptions are encoded with it); --hash-text: the built-in hash text space (the procedural toy).
--dataset: a folder in 100STYLE layout (stylemotif/datasets.py) or "procedural". --image-embeds: a
safetensors file with one tensor [n, embed_dim] per style label (named as the dataset's styles), e.g.
CLIP Vision Encode's image_embeds of style images (ViT-L/14 for a CLIP-L base): the alignment head then
learns from images as well as descriptions (training.train_alignment). Resume states are
written to OUT's folder as OUT.partial/*.resume; rerun the same command after a crash to continue
(bit-identical to an uninterrupted run; another job's states are refused, naming the setting).
"""
import argparse
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def clip_embed(path):
    from scripts.comfy_root import import_comfy_in_process
    import_comfy_in_process()
    import comfy.sd

    from stylemotif.text_embedding import clip_text_features
    clip = comfy.sd.load_clip([path], clip_type=comfy.sd.CLIPType.STABLE_DIFFUSION)
    return lambda texts: clip_text_features(clip, texts)


def main(argv=None):
    from safetensors.torch import load_file

    from stylemotif.model import StyleMotif
    from stylemotif.pipeline import DEFAULT_STEPS, MLD_LR, finetune_style, style_set
    from stylemotif.text_embedding import HashTextEncoder

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("out")
    text = ap.add_mutually_exclusive_group(required=True)
    text.add_argument("--clip", help="clip_l.safetensors (the base's text encoder)")
    text.add_argument("--hash-text", action="store_true", help="the built-in hash text space (procedural toy)")
    ap.add_argument("--dataset", default="procedural")
    for stage in ("style_pretrain", "stylization", "alignment"):
        ap.add_argument(f"--{stage.replace('_', '-')}-steps", type=int, default=DEFAULT_STEPS[stage])
    ap.add_argument("--frames", type=int, default=60, help="training window length (20 fps)")
    ap.add_argument("--clips", type=int, default=500, help="procedural set size")
    ap.add_argument("--image-embeds", help="safetensors: style label -> [n, embed_dim] image embeddings for the alignment head")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--overwrite", action="store_true")
    a = ap.parse_args(argv)
    if os.path.exists(a.out) and not a.overwrite:
        print(f"train_stylemotif: {a.out} exists; choose another name or pass --overwrite", file=sys.stderr)
        return 2
    base = StyleMotif.load(a.base)
    embed = HashTextEncoder(base.config.text_dim) if a.hash_text else clip_embed(a.clip)
    data, texts = style_set(a.dataset, a.frames, a.clips, a.seed)
    steps = {"style_pretrain": a.style_pretrain_steps, "stylization": a.stylization_steps, "alignment": a.alignment_steps}
    partial = os.path.splitext(a.out)[0] + ".partial"

    def progress(stage, done, total):
        if done == total or done % 50 == 0:
            print(f"[train_stylemotif] {stage} {done}/{total}", flush=True)
    images = load_file(a.image_embeds) if a.image_embeds else None
    model = finetune_style(base, data, texts, embed, steps, MLD_LR, a.seed, partial, progress, image_embeds=images)
    model.save(a.out, {"source": f"style fine-tune of {os.path.basename(a.base)} on {os.path.basename(a.dataset.rstrip('/'))}"})
    shutil.rmtree(partial, ignore_errors=True)
    print(f"[train_stylemotif] wrote {a.out} (styles: {', '.join(model.bank_labels)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
