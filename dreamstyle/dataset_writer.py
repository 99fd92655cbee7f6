"""Append DreamStyle pairs to a dataset folder atomically; re-running resumes.

One append: every media file of the pair is written and fsynced inside `pairs/.tmp-<id>-<pid>/`,
that folder is renamed to `pairs/<id>/` (one atomic rename), and only then is the manifest line
appended and fsynced. A crash at any point leaves either nothing in the manifest for that pair (a
leftover temp or orphan folder the reader warns about and the next append of that id replaces), or
the complete record. A last manifest line cut short (power loss during the append) is ignored by
the reader and truncated away by the next writer. Writers in several processes serialise on a
lock file; ids already in the manifest are skipped, so a rerun of the same build only adds what is
missing, and committing a pair removes temp folders that killed appends of the same id left.

The writer only ever changes a DreamStyle dataset: an existing folder must be empty or hold a manifest
whose first line is a format record, and the manifest, lock and pairs/ must be plain files and folders
inside it (no symlinks); anything else is refused before a byte is written, so a foreign file is never
truncated and a foreign folder never cleared.
"""
import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from .dataset_format import (FORMAT_VERSION, MANIFEST, PAIRS_DIR, TMP_PREFIX, VIDEO_EXT, check_pair_id,
                             manifest_lines, pair_dir, parse_line)
from .dataset_media import fsync_path, sha256_file, write_png, write_video

LOCK_FILE = ".manifest.lock"
RECORD_START = json.dumps({"format_version": FORMAT_VERSION}).encode()[:-1] + b", "  # how every record line starts


@dataclass
class PairData:
    """One pair to write. Videos are iterables of uint8 [H, W, 3] frames (a [T, H, W, 3] array works)."""
    id: str
    raw: Iterable[np.ndarray]
    stylized: Iterable[np.ndarray]
    refs: Sequence[np.ndarray]
    caption_ns: str
    caption_sty: str
    fps: float = 16.0
    control: Optional[Iterable[np.ndarray]] = None
    split: str = "train"
    scores: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


class DatasetWriter:
    """Appends pairs to the dataset at FOLDER (created if missing)."""

    def __init__(self, folder):
        self.folder = os.path.abspath(folder)
        self.manifest = os.path.join(self.folder, MANIFEST)
        check_writable_dataset(self.folder)
        os.makedirs(os.path.join(self.folder, PAIRS_DIR), exist_ok=True)
        self._ids, self._offset = set(), 0
        with self._locked():
            self._catch_up()

    def __contains__(self, pair_id):
        return pair_id in self._ids

    def __len__(self):
        return len(self._ids)

    def append(self, pair: PairData) -> bool:
        """Write PAIR; False (and nothing written) when its id is already in the manifest."""
        _check_pair(pair)
        if pair.id in self._ids:
            return False
        pairs = os.path.join(self.folder, PAIRS_DIR)
        tmp = os.path.join(pairs, f"{TMP_PREFIX}{pair.id}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            record = _write_media(pair, tmp)
            with self._locked():
                self._catch_up()
                if pair.id in self._ids:
                    shutil.rmtree(tmp)
                    return False
                final = os.path.join(self.folder, pair_dir(pair.id))
                if os.path.exists(final):  # an orphan of an interrupted append: never reached the manifest
                    shutil.rmtree(final)
                os.rename(tmp, final)
                fsync_path(pairs)
                self._append_line(json.dumps(record, ensure_ascii=False) + "\n")
                self._ids.add(pair.id)
                _remove_stale_temps(pairs, pair.id)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return True

    def _append_line(self, line):
        data = line.encode("utf-8")
        fd = os.open(self.manifest, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        self._offset += len(data)

    def _catch_up(self):
        """Cut a torn last line, then learn the ids other writers appended since we last looked."""
        if not os.path.exists(self.manifest):
            open(self.manifest, "ab").close()
            fsync_path(self.folder)
        with open(self.manifest, "rb+") as f:
            end = _end_of_last_full_line(f)
            if end != f.seek(0, os.SEEK_END):
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
            f.seek(self._offset)
            for _, text, _ in manifest_lines(f):
                record, _ = parse_line(text)
                if record is not None and isinstance(record.get("id"), str):
                    self._ids.add(record["id"])
            self._offset = end

    @contextmanager
    def _locked(self):
        with open(os.path.join(self.folder, LOCK_FILE), "a+b") as f:
            _lock(f)
            try:
                yield
            finally:
                _unlock(f)


class ForeignFolderError(ValueError):
    """The folder (or a file in it) is not a DreamStyle dataset the writer may change."""


def check_writable_dataset(folder):
    """Refuse FOLDER unless it is absent, empty, or a DreamStyle dataset (see module doc)."""
    if os.path.islink(folder) or (os.path.exists(folder) and not os.path.isdir(folder)):
        raise ForeignFolderError(f"{folder} is not a plain folder; refusing to write a dataset there")
    if not os.path.isdir(folder):
        return
    for name in (MANIFEST, LOCK_FILE, PAIRS_DIR):
        path = os.path.join(folder, name)
        if os.path.islink(path):
            raise ForeignFolderError(f"{path} is a symlink; refusing to write a dataset through it")
        want_dir = name == PAIRS_DIR
        if os.path.exists(path) and os.path.isdir(path) != want_dir:
            raise ForeignFolderError(f"{path} is not a {'folder' if want_dir else 'file'}: not a DreamStyle "
                                     "dataset; refused")
    manifest = os.path.join(folder, MANIFEST)
    if not os.path.exists(manifest):
        pairs = os.path.join(folder, PAIRS_DIR)
        if set(os.listdir(folder)) - {PAIRS_DIR, LOCK_FILE} or (os.path.isdir(pairs) and os.listdir(pairs)):
            raise ForeignFolderError(f"{folder} holds other files and no {MANIFEST}: not a DreamStyle dataset; "
                                     "choose a new or empty folder")
        return
    with open(manifest, "rb") as f:
        first = f.readline(1 << 20)
    if first.endswith(b"\n"):
        record, _ = parse_line(first.decode("utf-8", "replace"))
        ours = record is not None and record.get("format_version") == FORMAT_VERSION and "id" in record
    else:  # empty, or the first append was cut short: only our own record's opening may be cut away
        ours = RECORD_START.startswith(first) or first.startswith(RECORD_START)
    if not ours:
        raise ForeignFolderError(f"{manifest} is not a DreamStyle manifest (its first line is not a format "
                                 f"{FORMAT_VERSION} record); refusing to change it")


def _check_pair(pair):
    check_pair_id(pair.id)
    for key in ("caption_ns", "caption_sty"):
        text = getattr(pair, key)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"pair {pair.id}: {key} must be a non-empty string, got {text!r}")
    if pair.raw is None or pair.stylized is None:
        raise ValueError(f"pair {pair.id}: raw and stylized videos are both required")
    if not len(pair.refs):
        raise ValueError(f"pair {pair.id}: expected at least one style reference image, got none")
    if not isinstance(pair.split, str) or not pair.split:
        raise ValueError(f"pair {pair.id}: split must be a non-empty string, got {pair.split!r}")
    if not pair.fps > 0:
        raise ValueError(f"pair {pair.id}: fps must be positive, got {pair.fps!r}")


def _write_media(pair, tmp):
    rel = pair_dir(pair.id)
    record = {"format_version": FORMAT_VERSION, "id": pair.id}
    for key in ("raw", "stylized", "control"):
        frames = getattr(pair, key)
        if frames is None:
            continue
        name = key + VIDEO_EXT
        path = os.path.join(tmp, name)
        n, w, h = write_video(path, frames, pair.fps, what=f"pair {pair.id}: {key}")
        fsync_path(path)
        record[key] = {"path": f"{rel}/{name}", "frames": n, "width": w, "height": h, "fps": float(pair.fps),
                       "sha256": sha256_file(path)}
    raw, sty = record["raw"], record["stylized"]
    if (raw["frames"], raw["width"], raw["height"]) != (sty["frames"], sty["width"], sty["height"]):
        raise ValueError(f"pair {pair.id}: raw video is {raw['frames']} frames of {raw['width']}x{raw['height']}, "
                         f"stylized is {sty['frames']} frames of {sty['width']}x{sty['height']}; they must match")
    if "control" in record and record["control"]["frames"] != raw["frames"]:
        raise ValueError(f"pair {pair.id}: control video has {record['control']['frames']} frames, "
                         f"raw has {raw['frames']}; they must match")
    refs = []
    for i, image in enumerate(pair.refs):
        name = f"ref_{i:02d}.png"
        path = os.path.join(tmp, name)
        w, h = write_png(path, image, what=f"pair {pair.id}: refs[{i}]")
        fsync_path(path)
        refs.append({"path": f"{rel}/{name}", "width": w, "height": h, "sha256": sha256_file(path)})
    fsync_path(tmp)
    record.update(refs=refs, caption_ns=pair.caption_ns, caption_sty=pair.caption_sty, split=pair.split,
                  scores=dict(pair.scores), meta=dict(pair.meta))
    return record


def _remove_stale_temps(pairs, pair_id):
    """Temp folders of PAIR_ID left by killed appends; obsolete once the pair is committed."""
    prefix = f"{TMP_PREFIX}{pair_id}-"
    for name in os.listdir(pairs):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            shutil.rmtree(os.path.join(pairs, name), ignore_errors=True)


def _end_of_last_full_line(f, chunk=1 << 16):
    end = f.seek(0, os.SEEK_END)
    pos = end
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)
        block = f.read(pos - start)
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


if os.name == "nt":
    import msvcrt

    def _lock(f):
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_LOCK, 1)

    def _unlock(f):
        f.seek(0)
        msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(f):
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)

    def _unlock(f):
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
