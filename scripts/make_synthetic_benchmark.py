"""Write the synthetic DreamStyle style benchmark (exact paired data, no download) into a folder.

    python scripts/make_synthetic_benchmark.py OUT [--scenes 8] [--styles palette,ink,...] [--frames 17]
        [--size 64] [--refs 3] [--heldout 0.25] [--seed 0]

Rerunning into the same folder writes only the missing pairs; the folder is then checked and the
reader's report printed (exit code 1 if it has errors).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dreamstyle.dataset_check import check_dataset  # noqa: E402
from dreamstyle.synthetic_benchmark import build_synthetic_benchmark  # noqa: E402
from dreamstyle.synthetic_styles import STYLES  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--styles", default=",".join(STYLES), help=f"comma-separated, from {', '.join(STYLES)}")
    ap.add_argument("--frames", type=int, default=17)
    ap.add_argument("--size", type=int, default=64, help="frame height and width")
    ap.add_argument("--refs", type=int, default=3, help="style references per pair (K)")
    ap.add_argument("--heldout", type=float, default=0.25, help="fraction of scenes held out")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    progress = lambda done, total: print(f"\r{done}/{total} pairs", end="", file=sys.stderr, flush=True)
    out = build_synthetic_benchmark(a.out, a.scenes, a.styles.split(","), a.frames, a.size, a.size, a.refs,
                                    a.heldout, a.seed, progress)
    print(file=sys.stderr)
    print(f"wrote {out['written']} pairs, {out['skipped']} already there")
    report = check_dataset(a.out, deep=False)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
