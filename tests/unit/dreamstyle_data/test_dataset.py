"""The paired-data format: writer round trip, resume, and a reader that reports every problem."""
import json
import os

import numpy as np
import pytest

from dreamstyle.dataset_check import check_dataset
from dreamstyle.dataset_format import FORMAT_VERSION, MANIFEST
from dreamstyle.dataset_media import read_video, write_video
from dreamstyle.dataset_reader import DatasetError, iter_pairs
from dreamstyle.dataset_writer import DatasetWriter


def manifest_records(folder):
    with open(os.path.join(folder, MANIFEST), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_round_trip_is_lossless_and_lazy(tmp_path, make_pair):
    pairs = [make_pair(f"p{i}", seed=i, caption_sty=f"ünïcode 画 {i}, in ink style") for i in range(3)]
    writer = DatasetWriter(tmp_path)
    assert all(writer.append(p) for p in pairs)
    records = manifest_records(tmp_path)
    assert [r["format_version"] for r in records] == [FORMAT_VERSION] * 3
    report = check_dataset(tmp_path)
    assert report.ok and report.pairs == 3 and not report.problems, report.summary()
    it = iter_pairs(tmp_path)
    first = next(it)  # a generator: nothing past the first record has been touched
    assert first.id == "p0"
    for want, got in zip(pairs, [first, *it]):
        np.testing.assert_array_equal(got.load_raw(), want.raw)
        np.testing.assert_array_equal(got.load_stylized(), want.stylized)
        np.testing.assert_array_equal(np.stack(list(got.raw_frames())), want.raw)
        assert all(np.array_equal(a, b) for a, b in zip(got.refs(), want.refs))
        assert got.caption_sty == want.caption_sty and got.caption_ns == want.caption_ns


def test_rerun_resumes_and_skips_present_ids(tmp_path, make_pair):
    w = DatasetWriter(tmp_path)
    assert w.append(make_pair("a")) and w.append(make_pair("b"))
    w2 = DatasetWriter(tmp_path)  # a second run
    assert "a" in w2 and len(w2) == 2
    assert not w2.append(make_pair("a", seed=9))
    assert w2.append(make_pair("c"))
    assert [r["id"] for r in manifest_records(tmp_path)] == ["a", "b", "c"]
    # the first writer learns what the second appended before it writes
    assert not w.append(make_pair("c"))
    assert check_dataset(tmp_path).pairs == 3


def test_writer_refuses_invalid_pairs_and_leaves_no_trace(tmp_path, make_pair):
    w = DatasetWriter(tmp_path)
    bad = make_pair("short")
    bad.stylized = bad.stylized[:-1]
    with pytest.raises(ValueError, match="raw video is 5 frames.*stylized is 4 frames"):
        w.append(bad)
    with pytest.raises(ValueError, match="caption_ns"):
        w.append(make_pair("empty", caption_ns="  "))
    with pytest.raises(ValueError, match="pair id"):
        w.append(make_pair("../escape"))
    floats = make_pair("floats")
    floats.raw = floats.raw.astype(np.float32) / 255
    with pytest.raises(ValueError, match="raw: expected uint8 frames"):
        w.append(floats)
    assert os.listdir(tmp_path / "pairs") == []
    assert manifest_records(tmp_path) == []
    assert check_dataset(tmp_path).ok


def test_streamed_frames_are_accepted(tmp_path, make_pair):
    pair = make_pair("gen")
    frames = pair.raw
    pair.raw = (f for f in frames)  # a generator, as a long-video producer would give
    assert DatasetWriter(tmp_path).append(pair)
    np.testing.assert_array_equal(next(iter_pairs(tmp_path)).load_raw(), frames)


def _damaged_dataset(folder, make_pair):
    """Six pairs, then one problem of each kind; returns {kind: (line, path)}."""
    w = DatasetWriter(folder)
    for i in range(6):
        w.append(make_pair(f"p{i}", seed=i))
    recs = manifest_records(folder)
    pdir = os.path.join(folder, "pairs")
    os.remove(os.path.join(pdir, "p0", "stylized.mkv"))                            # line 1: missing file
    short = read_video(os.path.join(pdir, "p1", "raw.mkv"))[:3]                    # line 2: frame mismatch
    write_video(os.path.join(pdir, "p1", "stylized.mkv"), short, 16)
    with open(os.path.join(pdir, "p2", "ref_00.png"), "wb") as f:                  # line 3: unreadable media
        f.write(b"\x89PNG not really")
    recs[3]["caption_ns"] = ""                                                     # line 4: empty caption
    recs[4]["id"] = "p0"                                                           # line 5: duplicate id
    lines = [json.dumps(r) for r in recs]
    lines.insert(5, '{"id": "p9", "raw": ')                                        # line 6: corrupted line
    with open(os.path.join(folder, MANIFEST), "w") as f:
        f.write("\n".join(lines) + "\n")
    return {"missing": (1, os.path.join(pdir, "p0", "stylized.mkv")),
            "mismatch": (2, os.path.join(pdir, "p1", "stylized.mkv")),
            "unreadable": (3, os.path.join(pdir, "p2", "ref_00.png")),
            "caption": (4, None), "duplicate": (5, None), "corrupt": (6, os.path.join(folder, MANIFEST))}


def test_check_reports_every_problem_with_line_and_path(tmp_path, make_pair):
    where = _damaged_dataset(str(tmp_path), make_pair)
    report = check_dataset(tmp_path)
    assert not report.ok
    by_line = {}
    for p in report.errors:
        by_line.setdefault(p.line, []).append(p)
    assert sorted(by_line) == [1, 2, 3, 4, 5, 6]
    expect = {"missing": "missing file", "mismatch": "raw video is 5 frames of 32x24 but stylized is 3 frames",
              "unreadable": "unreadable image", "caption": "caption_ns: empty caption",
              "duplicate": "duplicate id (first at line 1)", "corrupt": "not valid JSON"}
    for kind, (line, path) in where.items():
        hits = [p for p in by_line[line] if expect[kind] in p.message]
        assert hits, (kind, [str(p) for p in by_line[line]])
        if path:
            assert hits[0].path == path
    text = report.summary()
    assert "manifest line 6" in text and os.path.join("p0", "stylized.mkv") in text


def test_check_counts_valid_pairs_next_to_broken_ones(tmp_path, make_pair):
    _damaged_dataset(str(tmp_path), make_pair)
    report = check_dataset(tmp_path)
    assert report.pairs == 1 and report.splits["train"] == 1  # p5, line 7


def test_deep_check_catches_bit_rot_the_quick_check_cannot(tmp_path, make_pair):
    DatasetWriter(tmp_path).append(make_pair("p"))
    path = tmp_path / "pairs" / "p" / "raw.mkv"
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid:mid + 40] = bytes(40)
    path.write_bytes(bytes(data))
    assert check_dataset(tmp_path, deep=False).ok
    errors = check_dataset(tmp_path, deep=True).errors
    assert len(errors) == 1 and "sha256" in errors[0].message and errors[0].path == str(path)


def test_torn_last_line_is_ignored_and_repaired(tmp_path, make_pair):
    DatasetWriter(tmp_path).append(make_pair("a"))
    with open(tmp_path / MANIFEST, "a") as f:
        f.write('{"format_version": 1, "id": "b", "raw": {"pa')  # power cut during the append
    report = check_dataset(tmp_path)
    assert report.ok and report.pairs == 1
    assert [p.line for p in report.warnings] == [2]
    assert [p.id for p in iter_pairs(tmp_path)] == ["a"]
    w = DatasetWriter(tmp_path)
    assert w.append(make_pair("b"))
    assert [r["id"] for r in manifest_records(tmp_path)] == ["a", "b"]
    assert not check_dataset(tmp_path).problems


def test_iter_pairs_stops_at_a_bad_line_naming_it(tmp_path, make_pair):
    DatasetWriter(tmp_path).append(make_pair("a"))
    with open(tmp_path / MANIFEST, "a") as f:
        f.write("[1, 2]\n")
    it = iter_pairs(tmp_path)
    assert next(it).id == "a"
    with pytest.raises(DatasetError, match=r"manifest.jsonl:2: expected a JSON object"):
        next(it)


def test_split_filter_and_missing_folder(tmp_path, make_pair):
    w = DatasetWriter(tmp_path / "d")
    w.append(make_pair("a", split="train"))
    w.append(make_pair("b", split="heldout"))
    assert [p.id for p in iter_pairs(tmp_path / "d", split="heldout")] == ["b"]
    report = check_dataset(tmp_path / "nothing")
    assert not report.ok and "no manifest" in report.errors[0].message
    with pytest.raises(DatasetError, match="no manifest"):
        list(iter_pairs(tmp_path / "nothing"))


def test_progress_is_called_per_line(tmp_path, make_pair):
    w = DatasetWriter(tmp_path)
    for i in range(3):
        w.append(make_pair(f"p{i}"))
    calls = []
    check_dataset(tmp_path, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("plant", ["foreign_manifest", "other_files", "symlinked_manifest", "manifest_is_folder"])
def test_writer_never_changes_a_foreign_folder(tmp_path, make_pair, plant):
    from dreamstyle.dataset_writer import ForeignFolderError
    folder, outside = tmp_path / "ds", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_bytes(b"precious data without a newline")
    if plant == "foreign_manifest":
        (folder / MANIFEST).write_bytes(b"line one\nprecious tail without newline")
    elif plant == "other_files":
        (folder / "notes.txt").write_bytes(b"x")
        (folder / "pairs").mkdir()
        (folder / "pairs" / "p0").mkdir()
    elif plant == "symlinked_manifest":
        os.symlink(outside, folder / MANIFEST)
    else:
        (folder / MANIFEST).mkdir()
    before = {p: p.read_bytes() for p in [outside, *folder.rglob("*")] if p.is_file()}
    with pytest.raises(ForeignFolderError, match="refus|not a DreamStyle"):
        DatasetWriter(folder).append(make_pair("p0"))
    assert {p: p.read_bytes() for p in before} == before
    assert (folder / "pairs" / "p0").exists() == (plant == "other_files")


def test_writer_accepts_an_empty_folder_and_a_torn_first_append(tmp_path, make_pair):
    (tmp_path / "empty").mkdir()
    assert DatasetWriter(tmp_path / "empty").append(make_pair("p0"))
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / MANIFEST).write_bytes(b'{"format_version": 1, "id": "p0", "raw": {"pa')  # crash in the first append
    assert DatasetWriter(torn).append(make_pair("p1"))
    assert [r["id"] for r in manifest_records(torn)] == ["p1"]
