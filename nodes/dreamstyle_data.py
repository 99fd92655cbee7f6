"""DreamStyle paired-data nodes: caption stripping, pair filter, pair saver, dataset check.

The construction pipeline itself is a graph of stock nodes (see workflows/dreamstyle_build_pairs.json);
these nodes only convert ComfyUI values and call dreamstyle/ (captions, pair_scores, pair_filter,
dataset_writer, dataset_check).
"""
import hashlib
import logging
import os
import time

import numpy as np
import torch

import comfy.utils
import folder_paths
from comfy_api.latest import io, ui

from ..dreamstyle.captions import strip_style
from ..dreamstyle.dataset_check import check_dataset
from ..dreamstyle.dataset_writer import DatasetWriter, PairData
from ..dreamstyle.pair_filter import PairThresholds, judge_pair
from ..dreamstyle.pair_scores import content_score, style_score
from .dreamstyle import as_rgb

CATEGORY = "UniStyle/DreamStyle/Data"
log = logging.getLogger("UniStyle.DreamStyle.Data")

DATASET_DIR_TOOLTIP = ("Dataset folder (manifest.jsonl + pairs/). A relative path is inside ComfyUI's output "
                       "folder; an absolute path is used as is.")


def to_uint8(image, name):
    """IMAGE [B, H, W, C] floats in [0, 1] -> numpy uint8 [B, H, W, 3]."""
    return (as_rgb(image, name).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def dataset_path(dataset_dir):
    if not dataset_dir.strip():
        raise ValueError("dataset_dir: expected a folder name or path, got an empty string")
    return dataset_dir if os.path.isabs(dataset_dir) else os.path.join(folder_paths.get_output_directory(), dataset_dir)


def clip_vision_embedder(clip_vision):
    """A style embedder for pair_scores from a stock CLIP_VISION model (its image_embeds)."""
    def embed(images):
        pixels = torch.from_numpy(np.asarray(images)).float() / 255
        return clip_vision.encode_image(pixels).image_embeds.float().cpu().numpy()
    return embed


def content_pair_id(raw, stylized, caption_sty):
    h = hashlib.sha256()
    for part in (raw.tobytes(), stylized.tobytes(), caption_sty.encode("utf-8")):
        h.update(hashlib.sha256(part).digest())
    return f"pair-{h.hexdigest()[:16]}"


class DreamStyleStripStyleCaption(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleStripStyleCaption",
            display_name="DreamStyle Strip Style Caption",
            category=CATEGORY,
            description="Turn a style caption (t_sty) into the style-free caption (t_ns) by removing style, palette, "
                        "texture and tone phrases with documented rules (docs/dreamstyle_data.md).",
            inputs=[
                io.String.Input("caption_sty", multiline=True, default="",
                                tooltip="Caption of the stylized video, e.g. from any captioning node or typed."),
                io.String.Input("extra_style_words", default="",
                                tooltip="Comma-separated extra words or phrases to treat as style vocabulary."),
            ],
            outputs=[
                io.String.Output(display_name="caption_ns"),
                io.String.Output(display_name="removed"),
            ],
        )

    @classmethod
    def execute(cls, caption_sty, extra_style_words) -> io.NodeOutput:
        extra = tuple(w.strip() for w in extra_style_words.split(",") if w.strip())
        result = strip_style(caption_sty, extra)
        if not result.text.strip():
            log.warning("caption_sty %r is all style vocabulary; the style-free caption is empty", caption_sty)
        return io.NodeOutput(result.text, "; ".join(result.removed))


class DreamStylePairFilter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStylePairFilter",
            display_name="DreamStyle Pair Filter",
            category=CATEGORY,
            description="Score a candidate pair (style: stylized video vs style references; content: raw vs "
                        "stylized structure) and compare with the thresholds. The reason is logged.",
            inputs=[
                io.Image.Input("raw_video", tooltip="The (re-generated) raw video frames."),
                io.Image.Input("stylized_video", tooltip="The stylized video frames, same count and size as raw."),
                io.Image.Input("style_refs", tooltip="The K style reference images (a batch)."),
                io.Float.Input("min_style", default=0.7, min=-1.0, max=1.0, step=0.01,
                               tooltip="Minimum style score. The offline score is about 0.87 for a matching style "
                                       "and 0.5 for a wrong one; a CSD/CLIP embedder has its own scale "
                                       "(DreamStyle used CSD > 0.5)."),
                io.Float.Input("min_content", default=0.2, min=-1.0, max=1.0, step=0.01,
                               tooltip="Minimum content score (layout self-similarity correlation, -1..1)."),
                io.Int.Input("max_frames", default=8, min=1, max=256,
                             tooltip="Frames sampled evenly from each video for scoring."),
                io.ClipVision.Input("clip_vision", optional=True,
                                    tooltip="Optional image encoder for the style score (e.g. a CSD or CLIP vision "
                                            "model); without it the offline feature-statistics score is used."),
            ],
            outputs=[
                io.Boolean.Output(display_name="passed"),
                io.String.Output(display_name="reason"),
                io.Float.Output(display_name="style_score"),
                io.Float.Output(display_name="content_score"),
            ],
        )

    @classmethod
    def execute(cls, raw_video, stylized_video, style_refs, min_style, min_content, max_frames,
                clip_vision=None) -> io.NodeOutput:
        raw, sty = to_uint8(raw_video, "raw_video"), to_uint8(stylized_video, "stylized_video")
        refs = to_uint8(style_refs, "style_refs")
        if raw.shape != sty.shape:
            raise ValueError(f"stylized_video: expected the raw video's shape {list(raw.shape)}, got {list(sty.shape)}")
        embedder = clip_vision_embedder(clip_vision) if clip_vision is not None else None
        pbar = comfy.utils.ProgressBar(2)
        s = style_score(sty, refs, embedder, max_frames)
        pbar.update(1)
        c = content_score(raw, sty, max_frames)
        pbar.update(1)
        verdict = judge_pair(s, c, PairThresholds(min_style, min_content))
        log.info("DreamStylePairFilter: %s", verdict.reason)
        return io.NodeOutput(verdict.passed, verdict.reason, s, c)


class DreamStyleSavePair(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleSavePair",
            display_name="DreamStyle Save Pair",
            category=CATEGORY,
            description="Append (raw, stylized, t_ns, t_sty, refs) to a DreamStyle dataset folder atomically. Pairs "
                        "whose id is already there are skipped; pairs that failed the filter are not written.",
            is_output_node=True,
            inputs=[
                io.String.Input("dataset_dir", default="dreamstyle_pairs", tooltip=DATASET_DIR_TOOLTIP),
                io.Image.Input("raw_video", tooltip="Raw video frames (x_raw)."),
                io.Image.Input("stylized_video", tooltip="Stylized video frames (x_sty), same count and size."),
                io.Image.Input("style_refs", tooltip="The K style reference images s^1..K (a batch)."),
                io.String.Input("caption_ns", multiline=True, default="", tooltip="Style-free caption t_ns."),
                io.String.Input("caption_sty", multiline=True, default="", tooltip="Style caption t_sty."),
                io.Boolean.Input("passed", default=True,
                                 tooltip="Write only when true; connect the Pair Filter's passed output."),
                io.String.Input("reason", default="", tooltip="Filter reason, logged and stored with the pair."),
                io.String.Input("pair_id", default="",
                                tooltip="Id of the pair (letters, digits, . _ -). Empty: a hash of the videos and "
                                        "style caption, so rerunning the same graph skips pairs already saved."),
                io.String.Input("split", default="train", tooltip="Split name stored with the pair (train, heldout...)."),
                io.Float.Input("fps", default=16.0, min=0.01, max=240.0, step=0.01, tooltip="Frame rate of both videos."),
                io.Image.Input("control_video", optional=True,
                               tooltip="Optional control video that drove both generations; stored with the pair."),
                io.Float.Input("style_score", optional=True, force_input=True, tooltip="Stored in the record's scores."),
                io.Float.Input("content_score", optional=True, force_input=True,
                               tooltip="Stored in the record's scores."),
            ],
            outputs=[
                io.String.Output(display_name="pair_id"),
                io.String.Output(display_name="status"),
            ],
        )

    @classmethod
    def execute(cls, dataset_dir, raw_video, stylized_video, style_refs, caption_ns, caption_sty, passed, reason,
                pair_id, split, fps, control_video=None, style_score=None, content_score=None) -> io.NodeOutput:
        raw, sty = to_uint8(raw_video, "raw_video"), to_uint8(stylized_video, "stylized_video")
        pid = pair_id.strip() or content_pair_id(raw, sty, caption_sty)
        if not passed:
            status = f"not written: {reason or 'passed is false'}"
        else:
            scores = {k: float(v) for k, v in (("style", style_score), ("content", content_score)) if v is not None}
            control = to_uint8(control_video, "control_video") if control_video is not None else None
            pair = PairData(pid, raw, sty, list(to_uint8(style_refs, "style_refs")), caption_ns, caption_sty,
                            fps=fps, control=control, split=split, scores=scores,
                            meta={"source": "comfyui", "filter": reason})
            written = DatasetWriter(dataset_path(dataset_dir)).append(pair)
            status = "written" if written else "skipped: already in the dataset"
        log.info("DreamStyleSavePair %s: %s", pid, status)
        return io.NodeOutput(pid, status, ui=ui.PreviewText(f"{pid}: {status}"))


class DreamStyleCheckDataset(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleCheckDataset",
            display_name="DreamStyle Check Dataset",
            category=CATEGORY,
            description="Validate a DreamStyle dataset folder and list every problem with its manifest line and path.",
            is_output_node=True,
            inputs=[
                io.String.Input("dataset_dir", default="dreamstyle_pairs", tooltip=DATASET_DIR_TOOLTIP),
                io.Boolean.Input("deep", default=True,
                                 tooltip="Hash and decode every file (catches damaged files; slow on big sets). "
                                         "Off: existence, headers and frame counts only."),
            ],
            outputs=[
                io.String.Output(display_name="report"),
                io.Int.Output(display_name="valid_pairs"),
                io.Int.Output(display_name="errors"),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, dataset_dir, deep):
        return time.time()  # the folder changes outside the graph: check every run

    @classmethod
    def execute(cls, dataset_dir, deep) -> io.NodeOutput:
        pbar = comfy.utils.ProgressBar(1)
        report = check_dataset(dataset_path(dataset_dir), deep,
                               progress=lambda done, total: pbar.update_absolute(done, max(total, 1)))
        text = report.summary()
        (log.warning if report.errors else log.info)("DreamStyleCheckDataset: %s", text)
        return io.NodeOutput(text, report.pairs, len(report.errors), ui=ui.PreviewText(text))


NODES = [DreamStyleStripStyleCaption, DreamStylePairFilter, DreamStyleSavePair, DreamStyleCheckDataset]
