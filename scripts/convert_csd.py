"""Convert the released CSD checkpoint (a .pth) into a ComfyUI CLIP-vision safetensors file.

    python scripts/convert_csd.py checkpoint.pth ComfyUI/models/clip_vision/csd_vit_l_style.safetensors
        [--head style|content] [--overwrite]

The .pth is read with torch.load(weights_only=True) (nothing in it can run code); the result loads with
the stock CLIPVisionLoader, and its image embeddings are CSD's style (or content) embeddings, which the
DreamStyle Pair Filter compares (threshold 0.5 as in the paper). See dreamstyle/csd_checkpoint.py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    from dreamstyle.csd_checkpoint import HEADS, convert
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="the CSD checkpoint (.pth)")
    ap.add_argument("dst", help="the .safetensors file to write (put it in models/clip_vision)")
    ap.add_argument("--head", choices=HEADS, default="style", help="which CSD head becomes the image embedding")
    ap.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    a = ap.parse_args(argv)
    n = convert(a.src, a.dst, a.head, a.overwrite)
    print(f"wrote {a.dst}: {n} tensors, CSD {a.head} head as the image projection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
