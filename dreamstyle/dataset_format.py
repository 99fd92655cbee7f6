"""The DreamStyle paired-data format: one folder, one `manifest.jsonl`, one media folder per pair.

DreamStyle "Data Construction Pipeline": D = {(x_raw, x_sty, t_ns, t_sty, s^1..K)}. One manifest line
is one pair (format_version 1):

    {"format_version": 1, "id": "syn-s00003-ink",
     "raw":      {"path": "pairs/<id>/raw.mkv", "frames": 17, "width": 64, "height": 64, "fps": 16.0,
                  "sha256": "..."},
     "stylized": {... same keys ...},
     "control":  {... same keys ...}                        (optional: the control video both used)
     "refs":     [{"path": "pairs/<id>/ref_00.png", "width": 64, "height": 64, "sha256": "..."}, ...],
     "caption_ns": "a red circle moves right",  "caption_sty": "a red circle moves right, as ink",
     "split": "train",  "scores": {"style": 0.71, "content": 0.62},  "meta": {...}}

Videos are FFV1 (lossless, bgr0, per-slice CRC) in Matroska; references are PNG; paths are relative
to the dataset folder and always use "/". This module only checks the shape of a record; the
reader (dataset_reader.py) checks the media against it.
"""
import json
import re

FORMAT_VERSION = 1
MANIFEST = "manifest.jsonl"
PAIRS_DIR = "pairs"
TMP_PREFIX = ".tmp-"
VIDEO_EXT = ".mkv"
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VIDEO_KEYS = ("raw", "stylized")
OPTIONAL_VIDEO_KEYS = ("control",)
CAPTION_KEYS = ("caption_ns", "caption_sty")


def pair_dir(pair_id):
    """Folder of one pair, relative to the dataset folder."""
    return f"{PAIRS_DIR}/{pair_id}"


def check_pair_id(pair_id):
    """Raise ValueError unless PAIR_ID can name a pair folder (letters, digits, . _ -; <= 128 chars)."""
    if not isinstance(pair_id, str) or not ID_PATTERN.match(pair_id):
        raise ValueError(f"pair id must match {ID_PATTERN.pattern} (letters, digits, '.', '_', '-'), got {pair_id!r}")


def parse_line(line):
    """One manifest line -> (record dict, None) or (None, message saying what is wrong with it)."""
    if line is None:
        return None, "not valid UTF-8"
    if not line.strip():
        return None, "empty line"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"not valid JSON ({e})"
    if not isinstance(record, dict):
        return None, f"expected a JSON object, got {type(record).__name__}"
    return record, None


def record_problems(record):
    """Messages for every field of RECORD that breaks the format (empty list: well formed)."""
    out = []
    if record.get("format_version") != FORMAT_VERSION:
        out.append(f"format_version is {record.get('format_version')!r}, this reader knows {FORMAT_VERSION}")
    pair_id = record.get("id")
    try:
        check_pair_id(pair_id)
    except ValueError as e:
        out.append(str(e))
    for key in VIDEO_KEYS + OPTIONAL_VIDEO_KEYS:
        if key in record or key in VIDEO_KEYS:
            out.extend(_media_problems(record.get(key), key, video=True))
    refs = record.get("refs")
    if not isinstance(refs, list) or not refs:
        out.append("refs: expected a non-empty list of style reference images")
    else:
        for i, ref in enumerate(refs):
            out.extend(_media_problems(ref, f"refs[{i}]", video=False))
    for key in CAPTION_KEYS:
        text = record.get(key)
        if not isinstance(text, str):
            out.append(f"{key}: expected a string, got {type(text).__name__}")
        elif not text.strip():
            out.append(f"{key}: empty caption")
    if not isinstance(record.get("split", "train"), str) or not record.get("split", "train"):
        out.append("split: expected a non-empty string")
    return out


def _media_problems(entry, key, video):
    if not isinstance(entry, dict):
        return [f"{key}: expected an object with path/width/height/sha256, got {type(entry).__name__}"]
    out = []
    path = entry.get("path")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        out.append(f"{key}.path: expected a relative path inside the dataset, got {path!r}")
    ints = ("frames", "width", "height") if video else ("width", "height")
    for k in ints:
        v = entry.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            out.append(f"{key}.{k}: expected a positive integer, got {v!r}")
    sha = entry.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        out.append(f"{key}.sha256: expected 64 hex digits, got {sha!r}")
    return out


def manifest_lines(f, first_line=1):
    """Yield (line number, text or None if not UTF-8, terminated) for each line of binary file F.

    `terminated` is False only for a last line without its newline: an append cut short by a crash.
    """
    for n, raw in enumerate(f, start=first_line):
        terminated = raw.endswith(b"\n")
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            text = None
        yield n, text, terminated
