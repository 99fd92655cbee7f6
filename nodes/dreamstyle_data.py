"""DreamStyle paired-data nodes: control video, captions, pair filter, pair saver, dataset check.

The construction pipeline is a graph (workflows/dreamstyle_build_pairs.json): the pack's HiCAST extractors
make depth/pose maps, DreamStyleControlVideo picks the control, a stock image graph stylizes the first frame
and the references, two stock WanFunControlToVideo + KSampler runs share that control and the noise seed, and
these nodes caption, score and save. They only convert ComfyUI values and call dreamstyle/ (pair_control,
captions, pair_scores, pair_filter, dataset_writer, dataset_check).

Datasets live under ComfyUI's output folder or a folder registered as `unistyle_datasets` (extra_model_paths:
`unistyle_datasets: /data/datasets`); names are relative, never absolute or with '..' (nodes/guards.py).
"""
import hashlib
import logging
import time

import numpy as np
import torch

import comfy.model_management
import comfy.utils
from comfy_api.latest import io, ui

from ..dreamstyle.captions import strip_style, style_words_in
from ..dreamstyle.dataset_check import check_dataset
from ..dreamstyle.dataset_writer import DatasetWriter, ForeignFolderError, PairData
from ..dreamstyle.pair_control import CONTROLS, compose_control, maps_for
from ..dreamstyle.pair_filter import PairThresholds, judge_pair
from ..dreamstyle.pair_scores import embedding_content_score, embedding_style_score, sample_frames
from .dreamstyle import as_rgb
from .guards import NodeInputError, find_output_folder, output_folder

CATEGORY = "UniStyle/DreamStyle/Data"
DATASETS = "unistyle_datasets"
MIN_SIDE = 8  # one latent cell of the Wan / SD VAEs
log = logging.getLogger("UniStyle.DreamStyle.Data")

DATASET_DIR_TOOLTIP = ("Dataset folder name, relative to ComfyUI's output folder (or to a folder registered as "
                       "'unistyle_datasets'); absolute paths and '..' are refused.")


def checked_image(image, name):
    """IMAGE [B, H, W, C] as RGB, refused (naming NAME) when empty or smaller than MIN_SIDE (NaN/inf: every
    IMAGE and FLOAT input is checked before execute, nodes/input_checks.py)."""
    if not isinstance(image, torch.Tensor):
        raise NodeInputError(f"{name}: expected an IMAGE tensor, got {type(image).__name__}")
    if image.ndim == 4 and image.shape[0] == 0:
        raise NodeInputError(f"{name}: the video has 0 frames; expected at least one")
    try:
        image = as_rgb(image, name)
    except ValueError as e:
        raise NodeInputError(str(e)) from e
    if min(image.shape[1:3]) < MIN_SIDE:
        raise NodeInputError(f"{name}: frames are {image.shape[2]}x{image.shape[1]} pixels; expected at least "
                             f"{MIN_SIDE}x{MIN_SIDE}")
    return image


def to_uint8(image, name):
    """IMAGE [B, H, W, C] floats in [0, 1] -> numpy uint8 [B, H, W, 3] (checked like checked_image)."""
    return (checked_image(image, name).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def dataset_for_writing(dataset_dir):
    """A DatasetWriter for DATASET_DIR under output/ (or unistyle_datasets); a foreign folder is refused."""
    folder = output_folder(dataset_dir, "dataset_dir", DATASETS)
    try:
        return DatasetWriter(folder)
    except ForeignFolderError as e:
        raise NodeInputError(f"dataset_dir: {e}") from e


def preview(frame):
    """A progress-bar preview of one uint8 [H, W, 3] frame."""
    from PIL import Image
    return ("JPEG", Image.fromarray(frame), 512)


def tracked(frames, pbar):
    """Yield FRAMES one by one, stopping when the user interrupts and ticking PBAR with a preview."""
    for frame in frames:
        comfy.model_management.throw_exception_if_processing_interrupted()
        yield frame
        pbar.update_absolute(pbar.current + 1, preview=preview(frame))


def encode_frames(clip_vision, images, pbar, batch=8):
    """Unit CLIP-vision image embeddings [N, D] of IMAGES [N, H, W, 3], in batches, interruptible."""
    out = []
    for i in range(0, images.shape[0], batch):
        comfy.model_management.throw_exception_if_processing_interrupted()
        emb = clip_vision.encode_image(images[i:i + batch]).image_embeds.detach().float().cpu()
        out.append(torch.nn.functional.normalize(emb.reshape(emb.shape[0], -1), dim=-1))
        pbar.update(min(batch, images.shape[0] - i))
    return torch.cat(out).numpy()


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
            description="The pair's captions: t_sty and t_ns from any captioning node (Florence-2, Qwen-VL, "
                        "JoyCaption...) or typed. t_ns must contain none of the documented style, palette, texture "
                        "and tone words (docs/dreamstyle_data.md); without a t_ns the rule-based stripper makes "
                        "it from t_sty.",
            inputs=[
                io.String.Input("caption_sty", multiline=True, default="",
                                tooltip="Caption of the stylized video (t_sty), e.g. from any captioning node."),
                io.String.Input("extra_style_words", default="",
                                tooltip="Comma-separated extra words or phrases to treat as style vocabulary."),
                io.String.Input("caption_ns", multiline=True, default="", optional=True,
                                tooltip="Style-free caption (t_ns) from a captioning node; empty: made from t_sty by "
                                        "the rule-based stripper."),
                io.Combo.Input("on_style_words", options=["strip", "refuse"], default="strip", optional=True,
                               tooltip="When caption_ns contains style words: strip them with the rules, or refuse "
                                       "the pair with an error naming the words."),
            ],
            outputs=[
                io.String.Output(display_name="caption_ns"),
                io.String.Output(display_name="removed"),
            ],
        )

    @classmethod
    def execute(cls, caption_sty, extra_style_words, caption_ns="", on_style_words="strip") -> io.NodeOutput:
        extra = tuple(w.strip() for w in extra_style_words.split(",") if w.strip())
        if not caption_sty.strip():
            raise NodeInputError("caption_sty: expected the stylized video's caption, got an empty string")
        source = caption_ns if caption_ns.strip() else caption_sty
        found = style_words_in(caption_ns, extra) if caption_ns.strip() else ()
        if caption_ns.strip() and not found:
            return io.NodeOutput(caption_ns.strip(), "")
        if found and on_style_words == "refuse":
            raise NodeInputError(f"caption_ns: contains style vocabulary {', '.join(repr(w) for w in found)}; a "
                                 "style-free caption names no style, palette, texture or tone (set on_style_words to "
                                 "'strip' to remove them)")
        result = strip_style(source, extra)
        if not result.text.strip():
            raise NodeInputError(f"caption_sty: {source!r} is all style vocabulary; the style-free caption would be "
                                 "empty (give caption_ns)")
        left = style_words_in(result.text, extra)
        if left:
            raise NodeInputError(f"caption_ns: style words {', '.join(map(repr, left))} survive the rules; edit it")
        return io.NodeOutput(result.text, "; ".join(result.removed))


class DreamStylePairFilter(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStylePairFilter",
            display_name="DreamStyle Pair Filter",
            category=CATEGORY,
            description="CSD-style filtering of a candidate pair on image embeddings: style = cosine of the mean "
                        "embedding of the stylized frames and of the style references (DreamStyle keeps CT pairs "
                        "with CSD > 0.5); content = mean cosine of raw vs stylized frame embeddings. The reason is "
                        "logged.",
            inputs=[
                io.Image.Input("raw_video", tooltip="The (re-generated) raw video frames."),
                io.Image.Input("stylized_video", tooltip="The stylized video frames, same count and size as raw."),
                io.Image.Input("style_refs", tooltip="The K style reference images (a batch)."),
                io.ClipVision.Input("clip_vision",
                                    tooltip="Style encoder: a CLIP vision model (ViT-H / ViT-L, CLIPVisionLoader) or "
                                            "the CSD checkpoint converted by scripts/convert_csd.py."),
                io.Float.Input("min_style", default=0.5, min=-1.0, max=1.0, step=0.01,
                               tooltip="Minimum style score (cosine, -1..1); 0.5 is DreamStyle's CSD threshold."),
                io.Float.Input("min_content", default=0.5, min=-1.0, max=1.0, step=0.01,
                               tooltip="Minimum content score (cosine of raw vs stylized frame embeddings, -1..1)."),
                io.Int.Input("max_frames", default=8, min=1, max=256,
                             tooltip="Frames sampled evenly from each video for scoring."),
                io.ClipVision.Input("content_clip_vision", optional=True,
                                    tooltip="Content encoder (e.g. CLIP ViT-H); empty: clip_vision. Use a plain CLIP "
                                            "model here when clip_vision is CSD (its embeddings are style only)."),
            ],
            outputs=[
                io.Boolean.Output(display_name="passed"),
                io.String.Output(display_name="reason"),
                io.Float.Output(display_name="style_score"),
                io.Float.Output(display_name="content_score"),
            ],
        )

    @classmethod
    def execute(cls, raw_video, stylized_video, style_refs, clip_vision, min_style, min_content, max_frames,
                content_clip_vision=None) -> io.NodeOutput:
        raw, sty = checked_image(raw_video, "raw_video"), checked_image(stylized_video, "stylized_video")
        refs = checked_image(style_refs, "style_refs")
        if raw.shape != sty.shape:
            raise NodeInputError(f"stylized_video: expected the raw video's shape {list(raw.shape)}, "
                                 f"got {list(sty.shape)}")
        idx = sample_frames(np.arange(raw.shape[0]), max_frames)
        raw, sty = raw[idx], sty[idx]
        content_encoder = content_clip_vision or clip_vision
        passes = 2 if content_encoder is clip_vision else 3  # stylized (+ again by a separate content encoder), raw
        pbar = comfy.utils.ProgressBar(len(idx) * passes + refs.shape[0])
        s_sty = encode_frames(clip_vision, sty, pbar)
        s = embedding_style_score(s_sty, encode_frames(clip_vision, refs, pbar))
        c_sty = s_sty if content_encoder is clip_vision else encode_frames(content_encoder, sty, pbar)
        c = embedding_content_score(encode_frames(content_encoder, raw, pbar), c_sty)
        verdict = judge_pair(s, c, PairThresholds(min_style, min_content))
        log.info("DreamStylePairFilter: %s", verdict.reason)
        return io.NodeOutput(verdict.passed, verdict.reason, s, c)


class DreamStyleControlVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DreamStyleControlVideo",
            display_name="DreamStyle Control Video",
            category=CATEGORY,
            description="The one control video both generations of a pair share (DreamStyle drives the raw and the "
                        "stylized I2V run with the same control). depth+pose (the paper's) draws the pose skeleton "
                        "over the depth map. Only the maps the chosen control needs are computed.",
            inputs=[
                io.Combo.Input("control", options=list(CONTROLS), default=CONTROLS[0],
                               tooltip="Which signal drives both generations: depth+pose (as in the paper), depth, "
                                       "pose or canny edges."),
                io.Image.Input("depth_map", optional=True, lazy=True,
                               tooltip="Depth maps of the clip (e.g. HiCAST Depth Map)."),
                io.Image.Input("pose_map", optional=True, lazy=True,
                               tooltip="Pose maps of the clip (e.g. HiCAST Pose Map)."),
                io.Image.Input("edge_map", optional=True, lazy=True, tooltip="Edge maps of the clip (e.g. Canny)."),
            ],
            outputs=[io.Image.Output(display_name="control_video")],
        )

    @classmethod
    def check_lazy_status(cls, control, depth_map=None, pose_map=None, edge_map=None):
        given = {"depth_map": depth_map, "pose_map": pose_map, "edge_map": edge_map}
        return [name for name in maps_for(control) if given[name] is None]

    @classmethod
    def execute(cls, control, depth_map=None, pose_map=None, edge_map=None) -> io.NodeOutput:
        given = {"depth_map": depth_map, "pose_map": pose_map, "edge_map": edge_map}
        maps = {}
        for name in maps_for(control):
            if given[name] is None:
                raise NodeInputError(f"{name}: control {control!r} needs it; connect an extractor")
            maps[name] = given[name]
            if maps[name].ndim != 4 or maps[name].shape[0] == 0:
                raise NodeInputError(f"{name}: expected an IMAGE batch with at least one frame, "
                                     f"got shape {list(maps[name].shape)}")
        try:
            return io.NodeOutput(compose_control(control, maps))
        except ValueError as e:
            raise NodeInputError(str(e)) from e


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
        if not fps > 0:
            raise NodeInputError(f"fps: expected a positive frame rate, got {fps}")
        pid = pair_id.strip() or content_pair_id(raw, sty, caption_sty)
        if not passed:
            status = f"not written: {reason or 'passed is false'}"
        else:
            scores = {k: float(v) for k, v in (("style", style_score), ("content", content_score)) if v is not None}
            control = to_uint8(control_video, "control_video") if control_video is not None else None
            if control is not None and control.shape[0] != raw.shape[0]:
                raise NodeInputError(f"control_video: {control.shape[0]} frames, the raw video has {raw.shape[0]}")
            writer = dataset_for_writing(dataset_dir)
            pbar = comfy.utils.ProgressBar(2 * raw.shape[0] + (0 if control is None else control.shape[0]))
            pair = PairData(pid, tracked(raw, pbar), tracked(sty, pbar), list(to_uint8(style_refs, "style_refs")),
                            caption_ns, caption_sty, fps=fps,
                            control=None if control is None else tracked(control, pbar),
                            split=split, scores=scores, meta={"source": "comfyui", "filter": reason})
            try:
                written = writer.append(pair)
            except ValueError as e:
                raise NodeInputError(f"DreamStyleSavePair: {e}") from e
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
        def progress(done, total):
            comfy.model_management.throw_exception_if_processing_interrupted()
            pbar.update_absolute(done, max(total, 1))
        report = check_dataset(find_output_folder(dataset_dir, "dataset_dir", DATASETS), deep, progress=progress)
        text = report.summary()
        (log.warning if report.errors else log.info)("DreamStyleCheckDataset: %s", text)
        return io.NodeOutput(text, report.pairs, len(report.errors), ui=ui.PreviewText(text))


NODES = [DreamStyleStripStyleCaption, DreamStyleControlVideo, DreamStylePairFilter, DreamStyleSavePair,
         DreamStyleCheckDataset]
