"""Stream the pairs of a DreamStyle dataset folder lazily: one manifest line, one handle at a time.

A `Pair` holds only its manifest record; its videos are decoded when asked for, frame by frame with
`raw_frames()` or whole with `load_raw()`. Iterating a dataset of any size therefore costs memory
for one record plus the set of ids seen (for duplicate detection). Use dataset_check.check_dataset
to validate a folder; iter_pairs stops at the first malformed line with its line number.
"""
import os
from dataclasses import dataclass

from .dataset_format import MANIFEST, manifest_lines, parse_line, record_problems
from .dataset_media import iter_video, read_png, read_video


class DatasetError(ValueError):
    """A dataset folder that cannot be read as the paired-data format."""


@dataclass(frozen=True)
class Pair:
    folder: str
    record: dict
    line: int

    @property
    def id(self):
        return self.record["id"]

    @property
    def caption_ns(self):
        return self.record["caption_ns"]

    @property
    def caption_sty(self):
        return self.record["caption_sty"]

    @property
    def split(self):
        return self.record.get("split", "train")

    @property
    def num_frames(self):
        return self.record["raw"]["frames"]

    @property
    def has_control(self):
        return "control" in self.record

    def path(self, relative):
        return os.path.join(self.folder, *relative.split("/"))

    def frames(self, key):
        """Iterator over the frames of video KEY ("raw", "stylized" or "control")."""
        return iter_video(self.path(self.record[key]["path"]))

    def raw_frames(self):
        return self.frames("raw")

    def stylized_frames(self):
        return self.frames("stylized")

    def load_raw(self):
        return read_video(self.path(self.record["raw"]["path"]))

    def load_stylized(self):
        return read_video(self.path(self.record["stylized"]["path"]))

    def load_control(self):
        return read_video(self.path(self.record["control"]["path"]))

    def refs(self):
        """The K style reference images as uint8 [H, W, 3] arrays."""
        return [read_png(self.path(r["path"])) for r in self.record["refs"]]


def iter_pairs(folder, split=None):
    """Yield a Pair per manifest record (only those of SPLIT when given), in manifest order."""
    folder = os.path.abspath(folder)
    manifest = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest):
        raise DatasetError(f"{manifest}: no manifest; expected a dataset folder written by DatasetWriter")
    seen = {}
    with open(manifest, "rb") as f:
        for n, text, terminated in manifest_lines(f):
            if not terminated:
                return  # an append cut short by a crash; the writer removes it
            record, error = parse_line(text)
            problems = [error] if error else record_problems(record)
            if problems:
                raise DatasetError(f"{manifest}:{n}: {'; '.join(problems)}")
            if record["id"] in seen:
                raise DatasetError(f"{manifest}:{n}: duplicate id {record['id']!r} (first at line {seen[record['id']]})")
            seen[record["id"]] = n
            pair = Pair(folder, record, n)
            if split is None or pair.split == split:
                yield pair
