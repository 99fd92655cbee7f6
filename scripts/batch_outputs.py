"""Where a batch item's outputs go, and whether a downloaded output is a readable file.

An input at INPUT_DIR/<rel> gets the folder OUT/outputs/<rel>/ (the whole relative path, extension included:
clip.mp4 and clip.mkv, or a/x.png and b/x.png, get different folders by construction) and its files are named
<node id>_<k><ext>, k counting that node's files: stable across runs and servers, whatever names the server chose.
"""
import os
import re

from dreamstyle.dataset_media import probe_video

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MEDIA_EXTS = {".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif", ".wav", ".flac", ".mp3", ".opus", ".ogg", ".m4a"}


def item_dir(out_dir, rel):
    """OUT/outputs/<rel>, refusing any relative path that would leave OUT/outputs."""
    root = os.path.join(os.path.abspath(out_dir), "outputs")
    path = os.path.normpath(os.path.join(root, rel))
    if os.path.isabs(rel) or os.path.commonpath([root, path]) != root or path == root:
        raise ValueError(f"input path {rel!r} does not name a folder under {root}")
    return path


def stays_inside(out_dir, folder):
    """Whether FOLDER (under OUT/outputs) and every existing folder above it resolve inside OUT/outputs: no
    symlink planted in the output tree leads writes elsewhere."""
    root = os.path.join(os.path.abspath(out_dir), "outputs")
    os.makedirs(root, exist_ok=True)
    real_root = os.path.realpath(root)
    path = os.path.dirname(folder)
    while not os.path.lexists(path):
        path = os.path.dirname(path)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def output_name(node_id, k, server_filename):
    """<node>_<k><ext>: only the extension of the server's name is kept (letters and digits only)."""
    ext = os.path.splitext(server_filename)[1].lower()
    ext = ext if re.fullmatch(r"\.[a-z0-9]{1,8}", ext) else ""
    return f"{re.sub(r'[^A-Za-z0-9]', '_', str(node_id))}_{k}{ext}"


def unreadable(path):
    """None when PATH is a non-empty file that opens as what its extension says; else the reason."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        ext = os.path.splitext(path)[1].lower()
        if ext in IMAGE_EXTS:
            from PIL import Image
            with Image.open(path) as im:
                im.load()
        elif ext in MEDIA_EXTS:
            import av
            with av.open(path) as container:
                if container.streams.video:
                    frames = probe_video(path, decode=True)[0]
                else:
                    frames = sum(1 for _ in container.decode(audio=0))
            if frames == 0:
                return "no frames decode"
        elif ext == ".safetensors":
            from safetensors import safe_open
            with safe_open(path, "np") as f:
                f.keys()
        elif ext == ".json":
            import json
            with open(path) as f:
                json.load(f)
        else:
            with open(path, "rb") as f:
                f.read(1)
    except Exception as e:  # any decoder error means the same thing here: the file is not usable
        return f"{type(e).__name__}: {e}"
    return None
