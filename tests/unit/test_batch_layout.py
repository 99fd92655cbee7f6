"""scripts/batch.py without a server: input listing, output layout, manifest folding, output checks."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from dreamstyle.dataset_media import write_video
from scripts.batch import Item, list_inputs, read_servers, still_there
from scripts.batch_manifest import Manifest, client_id_of, fold
from scripts.batch_outputs import item_dir, output_name, unreadable


def touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_inputs_are_read_recursively_without_hidden_files_or_the_output_folder(tmp_path):
    for rel in ("clip.mp4", "clip.mkv", "a/x.png", "b/x.png", ".hidden.png", ".cache/y.png", "out/outputs/z.png"):
        touch(str(tmp_path / rel))
    rels = [it.rel for it in list_inputs(str(tmp_path), "*", str(tmp_path / "out"))]
    assert rels == ["a/x.png", "b/x.png", "clip.mkv", "clip.mp4"]
    assert [it.rel for it in list_inputs(str(tmp_path), "*.png", str(tmp_path / "out"))] == ["a/x.png", "b/x.png"]
    assert [it.rel for it in list_inputs(str(tmp_path), "a/*", str(tmp_path / "out"))] == ["a/x.png"]


def test_same_stems_get_separate_folders_and_paths_cannot_leave_the_output_folder(tmp_path):
    out = str(tmp_path)
    folders = {item_dir(out, rel) for rel in ("clip.mp4", "clip.mkv", "a/x.png", "b/x.png", "x.png")}
    assert len(folders) == 5
    assert all(f.startswith(os.path.join(out, "outputs") + os.sep) for f in folders)
    for hostile in ("../x.png", "a/../../x.png", "/etc/passwd", ".", ""):
        with pytest.raises(ValueError):
            item_dir(out, hostile)


def test_a_symlink_planted_in_the_output_tree_cannot_lead_writes_elsewhere(tmp_path):
    from scripts.batch_outputs import stays_inside
    out, elsewhere = str(tmp_path / "out"), tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert stays_inside(out, item_dir(out, "a/b/c.png"))
    os.makedirs(os.path.join(out, "outputs", "a"))
    os.symlink(str(elsewhere), os.path.join(out, "outputs", "a", "b"))
    assert not stays_inside(out, item_dir(out, "a/b/c.png"))
    assert not stays_inside(out, item_dir(out, "a/b/d/e.png"))
    assert stays_inside(out, item_dir(out, "a/x.png"))


def test_output_names_keep_only_a_clean_extension_of_the_servers_name():
    assert output_name("9", 0, "ComfyUI_00001_.png") == "9_0.png"
    assert output_name("9", 3, "../../../etc/cron.d/evil.MP4") == "9_3.mp4"
    assert output_name("sub:1", 1, "noext") == "sub_1_1"
    assert output_name("9", 0, "x.p/ng") == "9_0"


def test_manifest_skips_a_torn_line_starts_fresh_after_it_and_folds_per_key(tmp_path):
    path = str(tmp_path / "m.jsonl")
    m = Manifest(path).open()
    m.append("run", client_id="c1")
    m.append("submitted", item="a", key="k1", server="s", prompt_id="p1")
    m.append("done", item="a", key="k1", server="s", prompt_id="p1", files=[])
    m.append("failed", item="b", key="k1", kind="x", reason="r")
    m.append("submitted", item="b", key="k1", server="s", prompt_id="p2")
    m.close()
    with open(path, "ab") as f:
        f.write(b'{"event": "done", "item": "b", "ke')  # the client died mid-write
    m = Manifest(path).open()
    m.append("failed", item="c", key="old", kind="x", reason="r")
    m.close()
    recs = Manifest(path).read()
    assert [r["event"] for r in recs] == ["run", "submitted", "done", "failed", "submitted", "failed"]
    assert client_id_of(recs) == "c1"
    st = fold(recs, {"a": "k1", "b": "k1", "c": "new"})
    assert st["a"].status == "done"
    assert st["b"].status == "in_flight" and st["b"].record["prompt_id"] == "p2" and st["b"].failures == 1
    assert st["c"].status == "new"  # its failure was under another workflow or input


def test_done_items_are_only_skipped_while_their_files_are_unchanged(tmp_path):
    out = str(tmp_path)
    item = Item("sub/a.png", "")
    folder = item_dir(out, item.rel)
    touch(os.path.join(folder, "3_0.png"), b"abc")
    rec = {"files": [{"path": "3_0.png", "bytes": 3,
                      "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"}]}
    assert still_there(out, item, rec)
    touch(os.path.join(folder, "3_0.png"), b"abd")
    assert not still_there(out, item, rec)
    assert not still_there(out, item, {"files": []})


def test_unreadable_names_empty_truncated_and_undecodable_files(tmp_path):
    png = str(tmp_path / "ok.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(png)
    assert unreadable(png) is None
    data = open(png, "rb").read()
    touch(str(tmp_path / "cut.png"), data[: len(data) // 2])
    touch(str(tmp_path / "empty.webp"), b"")
    assert "empty" in unreadable(str(tmp_path / "empty.webp"))
    assert unreadable(str(tmp_path / "cut.png")) is not None
    mp4 = str(tmp_path / "ok.mp4")
    write_video(mp4, np.zeros((4, 16, 16, 3), np.uint8), 8)
    assert unreadable(mp4) is None
    touch(str(tmp_path / "bad.mp4"), b"\x00" * 64)
    assert unreadable(str(tmp_path / "bad.mp4")) is not None
    touch(str(tmp_path / "bad.json"), b"{")
    assert unreadable(str(tmp_path / "bad.json")) is not None
    touch(str(tmp_path / "any.bin"), json.dumps({}).encode())
    assert unreadable(str(tmp_path / "any.bin")) is None


def test_servers_repeat_once_and_come_from_a_file_too(tmp_path):
    f = tmp_path / "s.txt"
    f.write_text("# farm\nhttp://10.0.0.2:8188/\n\n127.0.0.1:8188  # local\n")
    assert read_servers(["127.0.0.1:8188", "127.0.0.1:8188"], str(f)) == ["127.0.0.1:8188", "10.0.0.2:8188"]
    assert read_servers([], None) == ["127.0.0.1:8188"]


def test_a_second_batch_on_the_same_output_folder_is_refused_while_the_first_runs(tmp_path):
    from scripts.batch import lock_out_dir
    first = lock_out_dir(str(tmp_path))
    with pytest.raises(SystemExit, match="another batch is running"):
        lock_out_dir(str(tmp_path))
    os.close(first)  # what the OS does when the first run ends, crash included
    os.close(lock_out_dir(str(tmp_path)))
