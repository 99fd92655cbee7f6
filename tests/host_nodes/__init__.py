"""Test-only ComfyUI nodes that stand in for encoders ComfyUI cannot build tiny.

Loaded only by the test/demo host (scripts/host.py --test-nodes), never shipped in nodes/.

- TinyUMT5Loader: reads models/text_encoders/<file> from scripts/fixtures/umt5.py and returns a real
  comfy.sd.CLIP (ComfyUI's own T5 class and Wan tokenizer) that stock CLIPTextEncode accepts.
- TinyCLIPLoader: the same for SD1.5: reads models/text_encoders/<file> from scripts/fixtures/clip_l.py and
  returns a real comfy.sd.CLIP (ComfyUI's SDClipModel / CLIPTextModel with the tiny config, the stock SD1
  tokenizer) whose CLIPTextEncode output [B, 77, 768] fits the SD1.5 UNet's context_dim.
- TinyCLIPVisionLoader: reads models/clip_vision/<file> from scripts/fixtures/clip_vision.py and returns a
  real comfy.clip_vision.ClipVisionModel (ComfyUI's CLIPVisionModelProjection at the tiny width), the
  CLIP_VISION the DreamStyle pair filter scores with.
- RecordingKSampler: the stock KSampler (nodes.common_ksampler) that first appends to output/<record>.jsonl
  the sha256 of the noise it will use (comfy.sample.prepare_noise, as common_ksampler does) and of the two
  halves of the positive's concat_latent_image (Wan Fun-control: control latent | start-image latent), so
  an e2e test can compare what two generations really received.
- TinyCLIPVisionEncode: IMAGE -> CLIP_VISION_OUTPUT with penultimate_hidden_states [B, 257, 1280],
  the shape CLIP ViT-H gives Wan I2V's img_emb. Features are a fixed random projection of the
  image's 16x16 patch grid (plus a pooled token), so different images give different features and
  the same image always the same ones.
- BatchProbe: passes an image through after a fixed amount of CPU work (or a wait standing in for a
  device), and misbehaves on purpose when the `name` it is given says so, for scripts/batch.py's tests:
  "reject" fails validation (/prompt refuses the prompt), "explode" raises (an execution error), "empty"
  blocks its output (ComfyUI's ExecutionBlocker), so the SaveImage after it silently never runs.
"""
import hashlib
import json
import os
import tempfile
import time

import torch
import torch.nn.functional as F

import comfy.clip_vision
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models_base
import comfy.text_encoders.t5
import comfy.text_encoders.wan
import comfy.utils
import folder_paths
from comfy_execution.graph_utils import ExecutionBlocker
from comfy_api.latest import ComfyExtension, io


def _tiny_umt5_target(config):
    class TinyUMT5Model(comfy.sd1_clip.SDClipModel):
        def __init__(self, device="cpu", layer="last", layer_idx=None, dtype=None, model_options={}):
            super().__init__(device=device, layer=layer, layer_idx=layer_idx, textmodel_json_config=config,
                             dtype=dtype, special_tokens={"end": 1, "pad": 0}, model_class=comfy.text_encoders.t5.T5,
                             enable_attention_masks=True, zero_out_masked=True, model_options=model_options)

    class TinyWanTextEncoder(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            super().__init__(device=device, dtype=dtype, model_options=model_options, name="umt5xxl",
                             clip_model=TinyUMT5Model)

    return comfy.supported_models_base.ClipTarget(comfy.text_encoders.wan.WanT5Tokenizer, TinyWanTextEncoder)


def _tiny_clip_l_target(config):
    class TinyCLIPL(comfy.sd1_clip.SDClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, dtype=dtype, textmodel_json_config=dict(config), model_options=model_options)

    class TinySD1Clip(comfy.sd1_clip.SD1ClipModel):
        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, dtype=dtype, model_options=model_options, clip_model=TinyCLIPL)

    return comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, TinySD1Clip)


def _load_tiny_clip(clip_name, config_key, target, tokenizer_keys=()):
    """A comfy.sd.CLIP from a tiny text-encoder file: config JSON in metadata CONFIG_KEY, TOKENIZER_KEYS tensors
    handed to the tokenizer, the rest loaded into TARGET(config)'s model."""
    path = folder_paths.get_full_path_or_raise("text_encoders", clip_name)
    sd, meta = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    if not meta or config_key not in meta:
        raise ValueError(f"{clip_name}: expected a tiny fixture with {config_key} in its metadata")
    tokenizer_data = {k: sd.pop(k) for k in tokenizer_keys}
    clip = comfy.sd.CLIP(target(json.loads(meta[config_key])), parameters=comfy.utils.calculate_parameters(sd),
                         tokenizer_data=tokenizer_data, model_options={"dtype": torch.float32})
    clip.load_sd(sd)
    return clip


class TinyUMT5Loader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TinyUMT5Loader", display_name="Tiny UMT5 Loader (test)", category="testing",
            inputs=[io.Combo.Input("clip_name", options=folder_paths.get_filename_list("text_encoders"))],
            outputs=[io.Clip.Output()],
        )

    @classmethod
    def execute(cls, clip_name) -> io.NodeOutput:
        return io.NodeOutput(_load_tiny_clip(clip_name, "tiny_umt5_config", _tiny_umt5_target, ("spiece_model",)))


class TinyCLIPLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TinyCLIPLoader", display_name="Tiny CLIP-L Loader (test)", category="testing",
            inputs=[io.Combo.Input("clip_name", options=folder_paths.get_filename_list("text_encoders"))],
            outputs=[io.Clip.Output()],
        )

    @classmethod
    def execute(cls, clip_name) -> io.NodeOutput:
        return io.NodeOutput(_load_tiny_clip(clip_name, "tiny_clip_l_config", _tiny_clip_l_target))


def tiny_clip_vision_features(image, seed=0, width=1280, grid=16):
    """[B, H, W, 3] in [0, 1] -> [B, 1 + grid*grid, width]: a pooled token, then one per patch."""
    g = torch.Generator().manual_seed(seed)
    patches = F.adaptive_avg_pool2d(image.movedim(-1, 1).float(), grid)          # [B, 3, grid, grid]
    tokens = patches.flatten(2).transpose(1, 2) - 0.5                            # [B, grid*grid, 3]
    pos = torch.randn(grid * grid, 3, generator=g) * 0.1
    proj = torch.randn(3, width, generator=g)
    tokens = (tokens + pos) @ proj
    return torch.cat([tokens.mean(1, keepdim=True), tokens], dim=1)


class TinyCLIPVisionEncode(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TinyCLIPVisionEncode", display_name="Tiny CLIP Vision Encode (test)", category="testing",
            inputs=[io.Image.Input("image"), io.Int.Input("seed", default=0, min=0, max=2**31 - 1)],
            outputs=[io.ClipVisionOutput.Output()],
        )

    @classmethod
    def execute(cls, image, seed) -> io.NodeOutput:
        out = comfy.clip_vision.Output()
        feats = tiny_clip_vision_features(image, seed)
        out["penultimate_hidden_states"] = feats
        out["last_hidden_state"] = feats
        out["image_embeds"] = feats[:, 0, :1024]
        return io.NodeOutput(out)


class TinyCLIPVisionLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="TinyCLIPVisionLoader", display_name="Tiny CLIP Vision Loader (test)", category="testing",
            inputs=[io.Combo.Input("clip_name", options=folder_paths.get_filename_list("clip_vision"))],
            outputs=[io.ClipVision.Output()],
        )

    @classmethod
    def execute(cls, clip_name) -> io.NodeOutput:
        return io.NodeOutput(load_tiny_clip_vision(folder_paths.get_full_path_or_raise("clip_vision", clip_name)))


def load_tiny_clip_vision(path):
    """comfy.clip_vision.ClipVisionModel of the tiny fixture at PATH (its config in the file's metadata)."""
    sd, meta = comfy.utils.load_torch_file(path, safe_load=True, return_metadata=True)
    if not meta or "tiny_clip_vision_config" not in meta:
        raise ValueError(f"{path}: expected a tiny fixture with tiny_clip_vision_config in its metadata")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:  # ClipVisionModel reads a file
        f.write(meta["tiny_clip_vision_config"])
    try:
        model = comfy.clip_vision.ClipVisionModel(f.name)
    finally:
        os.unlink(f.name)
    missing, unexpected = model.load_sd(sd)
    if missing or unexpected:
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    return model


def _sha(t):
    return hashlib.sha256(t.detach().float().contiguous().cpu().numpy().tobytes()).hexdigest()


class RecordingKSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        import comfy.samplers
        return io.Schema(
            node_id="RecordingKSampler", display_name="Recording KSampler (test)", category="testing",
            inputs=[io.Model.Input("model"), io.Int.Input("seed", default=0, min=0, max=0xffffffffffffffff),
                    io.Int.Input("steps", default=20, min=1, max=10000), io.Float.Input("cfg", default=8.0),
                    io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS),
                    io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS),
                    io.Conditioning.Input("positive"), io.Conditioning.Input("negative"),
                    io.Latent.Input("latent_image"), io.Float.Input("denoise", default=1.0),
                    io.String.Input("record", default="sampling")],
            outputs=[io.Latent.Output()],
        )

    @classmethod
    def execute(cls, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise,
                record) -> io.NodeOutput:
        import comfy.sample
        import nodes
        latent = comfy.sample.fix_empty_latent_channels(model, latent_image["samples"])
        concat = positive[0][1]["concat_latent_image"]
        row = {"noise": _sha(comfy.sample.prepare_noise(latent, seed)), "control_latent": _sha(concat[:, :16]),
               "start_latent": _sha(concat[:, 16:]), "seed": seed, "shape": list(latent.shape)}
        with open(os.path.join(folder_paths.get_output_directory(), record + ".jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        return io.NodeOutput(nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive,
                                                   negative, latent_image, denoise=denoise)[0])


class BatchProbe(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="BatchProbe", display_name="Batch Probe (test)", category="testing",
            inputs=[io.Image.Input("image"), io.String.Input("name", default=""),
                    io.Int.Input("work", default=0, min=0, max=100000, tooltip="256x256 matmuls to run"),
                    io.Float.Input("wait", default=0.0, min=0.0, max=60.0, tooltip="seconds to sleep")],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def validate_inputs(cls, name, **kwargs):
        return f"name {name!r} asks to be rejected" if "reject" in name else True

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time()  # always runs, like a sampler with a fresh seed

    @classmethod
    def execute(cls, image, name, work, wait) -> io.NodeOutput:
        if "explode" in name:
            raise RuntimeError(f"BatchProbe exploded on {name}")
        x = torch.full((256, 256), 1.0 / 256)
        for _ in range(work):
            x = torch.tanh(x @ x)
        time.sleep(wait)
        return io.NodeOutput(ExecutionBlocker(None) if "empty" in name else image * float(x.mean() > 0))


class LoadedModels(io.ComfyNode):
    """Writes output/<record>.json: the torch module class of every model in ComfyUI's memory manager
    (comfy.model_management.current_loaded_models) once `after` is computed."""
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="LoadedModels", display_name="Loaded Models (test)", category="testing", is_output_node=True,
            inputs=[io.Image.Input("after", tooltip="Runs once this image is computed."),
                    io.String.Input("record", default="loaded_models", tooltip="output/<record>.json")],
            outputs=[],
        )

    @classmethod
    def fingerprint_inputs(cls, **kwargs):
        return time.time()

    @classmethod
    def execute(cls, after, record) -> io.NodeOutput:
        import comfy.model_management
        names = [f"{type(m.model.model).__module__}.{type(m.model.model).__name__}"
                 for m in comfy.model_management.current_loaded_models if m.model is not None]
        with open(os.path.join(folder_paths.get_output_directory(), record + ".json"), "w") as f:
            json.dump(names, f)
        return io.NodeOutput()


class TestNodes(ComfyExtension):
    async def get_node_list(self):
        return [TinyUMT5Loader, TinyCLIPLoader, TinyCLIPVisionEncode, TinyCLIPVisionLoader, RecordingKSampler,
                BatchProbe, LoadedModels]


async def comfy_entrypoint():
    return TestNodes()
