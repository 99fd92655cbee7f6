"""Validate a DreamStyle dataset folder and report every problem at once, each with line and path.

Errors: manifest missing or unreadable, a line that is not a well-formed record, duplicate ids,
missing or unreadable media, checksum mismatches, media that disagree with their record, raw and
stylized videos of different frame count or size, empty captions. Warnings: a torn last line, temp
and orphan folders left by an interrupted append (the writer ignores or replaces all three).
`deep=True` hashes and decodes every file (slow on big sets, catches bit rot); `deep=False` checks
existence, PNG and container headers and counts video packets.
"""
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

from .dataset_format import (MANIFEST, OPTIONAL_VIDEO_KEYS, PAIRS_DIR, TMP_PREFIX, VIDEO_KEYS, manifest_lines,
                             parse_line, record_problems)
from .dataset_media import probe_video, read_png, sha256_file


@dataclass(frozen=True)
class Problem:
    severity: str  # "error" or "warning"
    message: str
    path: Optional[str] = None  # the file the problem is about
    line: Optional[int] = None  # manifest line number (1-based)
    pair_id: Optional[str] = None

    def __str__(self):
        where = f"{self.path}" if self.path else ""
        if self.line is not None:
            where = f"manifest line {self.line}" + (f", {where}" if where else "")
        pid = f" [{self.pair_id}]" if self.pair_id else ""
        return f"{self.severity}:{pid} {where}: {self.message}" if where else f"{self.severity}:{pid} {self.message}"


@dataclass
class DatasetReport:
    folder: str
    pairs: int = 0  # records without any error
    problems: list = field(default_factory=list)
    splits: Counter = field(default_factory=Counter)

    @property
    def errors(self):
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self):
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self):
        return not self.errors

    def summary(self):
        head = (f"{self.folder}: {self.pairs} valid pairs ({', '.join(f'{k} {v}' for k, v in sorted(self.splits.items())) or 'none'}), "
                f"{len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join([head, *map(str, self.problems)])


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def check_dataset(folder, deep=True, progress=None):
    """DatasetReport for FOLDER; PROGRESS(done, total) is called once per manifest line."""
    folder = os.path.abspath(folder)
    report = DatasetReport(folder)
    manifest = os.path.join(folder, MANIFEST)
    if not os.path.isfile(manifest):
        report.problems.append(Problem("error", "no manifest.jsonl; not a dataset folder", manifest))
        return report
    total, first_line = count_lines(manifest), {}
    with open(manifest, "rb") as f:
        for n, text, terminated in manifest_lines(f):
            if not terminated:
                report.problems.append(Problem("warning", "last line has no newline: an append cut short by a crash; "
                                               "readers ignore it and the next writer removes it", manifest, n))
            else:
                record, problems = _check_line(folder, manifest, n, text, first_line, deep)
                report.problems.extend(problems)
                if not problems:
                    report.pairs += 1
                    report.splits[record.get("split", "train")] += 1
            if progress:
                progress(n, total)
    report.problems.extend(_leftovers(folder, first_line))
    return report


def _check_line(folder, manifest, n, text, first_line, deep):
    record, error = parse_line(text)
    if error:
        return None, [Problem("error", error, manifest, n)]
    pid = record.get("id") if isinstance(record.get("id"), str) else None
    out = [Problem("error", msg, manifest, n, pid) for msg in record_problems(record)]
    if pid is not None:
        if pid in first_line:
            out.append(Problem("error", f"duplicate id (first at line {first_line[pid]})", manifest, n, pid))
        else:
            first_line[pid] = n
    if out:
        return record, out
    actual = {}
    for key in VIDEO_KEYS + tuple(k for k in OPTIONAL_VIDEO_KEYS if k in record):
        entry = record[key]
        path = os.path.join(folder, *entry["path"].split("/"))
        found, problems = _check_file(path, entry, deep, n, pid)
        out.extend(problems)
        if found:
            try:
                frames, w, h, _ = probe_video(path, decode=deep)
            except Exception as e:  # PyAV raises many types for damaged files
                out.append(Problem("error", f"unreadable video ({type(e).__name__}: {e})", path, n, pid))
                continue
            actual[key] = (frames, w, h)
            if (frames, w, h) != (entry["frames"], entry["width"], entry["height"]):
                out.append(Problem("error", f"video is {frames} frames of {w}x{h}, record says "
                                   f"{entry['frames']} frames of {entry['width']}x{entry['height']}", path, n, pid))
    if "raw" in actual and "stylized" in actual and actual["raw"] != actual["stylized"]:
        (rf, rw, rh), (sf, sw, sh) = actual["raw"], actual["stylized"]
        out.append(Problem("error", f"raw video is {rf} frames of {rw}x{rh} but stylized is {sf} frames of {sw}x{sh}",
                           os.path.join(folder, *record["stylized"]["path"].split("/")), n, pid))
    if "control" in actual and "raw" in actual and actual["control"][0] != actual["raw"][0]:
        out.append(Problem("error", f"control video has {actual['control'][0]} frames, raw has {actual['raw'][0]}",
                           os.path.join(folder, *record["control"]["path"].split("/")), n, pid))
    for i, entry in enumerate(record["refs"]):
        path = os.path.join(folder, *entry["path"].split("/"))
        found, problems = _check_file(path, entry, deep, n, pid)
        out.extend(problems)
        if found:
            try:
                h, w = read_png(path).shape[:2]
            except Exception as e:  # Pillow raises many types for damaged files
                out.append(Problem("error", f"refs[{i}]: unreadable image ({type(e).__name__}: {e})", path, n, pid))
                continue
            if (w, h) != (entry["width"], entry["height"]):
                out.append(Problem("error", f"refs[{i}] is {w}x{h}, record says {entry['width']}x{entry['height']}",
                                   path, n, pid))
    return record, out


def _check_file(path, entry, deep, n, pid):
    if not os.path.isfile(path):
        return False, [Problem("error", "missing file", path, n, pid)]
    if deep and sha256_file(path) != entry["sha256"]:
        return True, [Problem("error", "sha256 differs from the record: the file changed or is damaged", path, n, pid)]
    return True, []


def _leftovers(folder, pair_ids):
    root = os.path.join(folder, PAIRS_DIR)
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(TMP_PREFIX):
            out.append(Problem("warning", "temp folder of an interrupted append; safe to delete", path))
        elif name not in pair_ids:
            out.append(Problem("warning", "folder of a pair not in the manifest (an append interrupted before its "
                               "manifest line); the next append of that id replaces it", path))
    return out
