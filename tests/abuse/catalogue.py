"""The hostile and careless inputs the abuse tier sends through /prompt, as data: one row per case.

A row is (target node, input, value, expected). The target node is built by `graph(target)` from the
small upstream graphs in TARGETS (tiny fixtures; widgets not given take their /object_info default), the
input is set to the value, and the prompt must fail with an error that names the input and matches
`expected` (a regex), or succeed when `expected` is OK (ANY: either). Placeholders in string values:
    {abs}   absolute path of the planted outside folder (outside every ComfyUI folder)
    {up}    the same folder as a '..' path from input/ or output/
    {upm}   the same folder as a '..' path from models/<kind>/
The outside folder holds secret.npy, secret.bvh, victim.safetensors and a paired dataset (pairs/); the
tier checks after every row that none of it changed and that no marker file of a planted pickle exists.
"""
NAN, INF = float("nan"), float("inf")
OK = None  # the prompt must succeed (careless but valid input)
ANY = "any"  # refused or run, but nothing outside ComfyUI's folders touched and no planted pickle run

PATH = (r"absolute paths are not allowed|'\.\.' is not allowed|resolves outside|expected a plain file name"
        r"|not in models/|Value not in list|is not one of the choices|pair id must match")
NOT_FINITE = r"NaN|finite|bigger than max|smaller than min"

# upstream graphs: name -> (class_type, inputs); "@name" links output 0 of that node, "@name:1" output 1
SOURCES = {
    "img": ("LoadImage", {"image": "abuse.png"}),
    "img2": ("LoadImage", {"image": "abuse2.png"}),
    "video": ("RepeatImageBatch", {"image": "@img", "amount": 5}),
    "pixel": ("ImageCrop", {"image": "@img", "width": 1, "height": 1, "x": 0, "y": 0}),
    "pixel_video": ("RepeatImageBatch", {"image": "@pixel", "amount": 5}),
    "nan_img": ("ImageBlend", {"image1": "@img", "image2": "@img", "blend_factor": NAN, "blend_mode": "normal"}),
    "nan_video": ("RepeatImageBatch", {"image": "@nan_img", "amount": 5}),
    "wan": ("UNETLoader", {"unet_name": "tiny_wan21_i2v.safetensors", "weight_dtype": "default"}),
    "wan_vae": ("VAELoader", {"vae_name": "tiny_wan21_vae.safetensors"}),
    "umt5": ("TinyUMT5Loader", {"clip_name": "tiny_umt5.safetensors"}),
    "pos": ("CLIPTextEncode", {"text": "a style", "clip": "@umt5"}),
    "neg": ("CLIPTextEncode", {"text": "", "clip": "@umt5"}),
    "video9": ("RepeatImageBatch", {"image": "@img2", "amount": 9}),
    "cond9": ("DreamStyleConditioning", {"positive": "@pos", "negative": "@neg", "vae": "@wan_vae", "video": "@video9"}),
    "cond": ("DreamStyleConditioning", {"positive": "@pos", "negative": "@neg", "vae": "@wan_vae", "video": "@video"}),
    "video_b": ("RepeatImageBatch", {"image": "@img2", "amount": 5}),
    "cond_b": ("DreamStyleConditioning", {"positive": "@pos", "negative": "@neg", "vae": "@wan_vae", "video": "@video_b"}),
    "nan_latent": ("LatentMultiply", {"samples": "@cond:2", "multiplier": NAN}),
    "clip_vision": ("TinyCLIPVisionLoader", {"clip_name": "tiny_clip_vision.safetensors"}),
    "sd": ("UNETLoader", {"unet_name": "tiny_sd15_unet.safetensors", "weight_dtype": "default"}),
    "sd_vae": ("VAELoader", {"vae_name": "tiny_sd15_taesd.safetensors"}),
    "clip_l": ("TinyCLIPLoader", {"clip_name": "tiny_clip_l.safetensors"}),
    "sd_cond": ("CLIPTextEncode", {"text": "", "clip": "@clip_l"}),
    "edge_adapter": ("HiCASTAdapterLoader", {"adapter_name": "tiny_sd15_edge_adapter.safetensors"}),
    "style_encoder": ("HiCASTAdapterLoader", {"adapter_name": "tiny_sd15_style_encoder.safetensors"}),
    "temporal": ("HiCASTAdapterLoader", {"adapter_name": "tiny_sd15_temporal_layers.safetensors"}),
    "sm": ("StyleMotifModelLoader", {"model_name": "tiny_stylemotif.safetensors"}),
    "motion": ("StyleMotifLoadMotion", {"file": "abuse_walk.bvh"}),
    "sm_style": ("StyleMotifEncodeStyle", {"model": "@sm", "motion": "@motion"}),
}

# each node of the pack with the links (and non-default widgets) it needs to run on the tiny fixtures
TARGETS = {
    "DreamStyleConditioning": {"positive": "@pos", "negative": "@neg", "vae": "@wan_vae", "video": "@video"},
    "DreamStyleTokenLoRALoader": {"model": "@wan", "lora_name": "tiny_dreamstyle_token_lora.safetensors"},
    "DreamStyleTrimLatent": {"samples": "@cond:2"},
    "DreamStyleDecode": {"vae": "@wan_vae", "samples": "@cond:2"},
    "DreamStyleLongVideo": {"model": "@wan", "positive": "@pos", "negative": "@neg", "vae": "@wan_vae",
                            "video": "@video", "chunk_frames": 5, "steps": 1},
    "DreamStyleStripStyleCaption": {"caption_sty": "a street in ink style"},
    "DreamStyleControlVideo": {"depth_map": "@video", "pose_map": "@video", "edge_map": "@video"},
    "DreamStylePairFilter": {"raw_video": "@video", "stylized_video": "@video", "style_refs": "@img",
                             "clip_vision": "@clip_vision"},
    "DreamStyleSavePair": {"dataset_dir": "abuse_pairs", "raw_video": "@video", "stylized_video": "@video",
                           "style_refs": "@img", "caption_ns": "a street", "caption_sty": "a street in ink"},
    "DreamStyleCheckDataset": {"dataset_dir": "abuse_pairs"},
    "DreamStyleTrainTokenLoRA": {"model": "@wan", "vae": "@wan_vae", "clip": "@umt5", "dataset_dir": "abuse_pairs",
                                 "lora_name": "abuse_lora", "steps": 1, "rank": 2, "accumulation": 1,
                                 "precision": "fp32", "gradient_checkpointing": False, "overwrite": True},
    "HiCASTEdgeMap": {"image": "@img"},
    "HiCASTSegmentationMap": {"image": "@img"},
    "HiCASTDepthMap": {"image": "@img"},
    "HiCASTPoseMap": {"image": "@img"},
    "HiCASTTemporalSmooth": {"maps": "@video"},
    "HiCASTAdapterLoader": {"adapter_name": "tiny_sd15_edge_adapter.safetensors"},
    "HiCASTApplyStyleAdapters": {"model": "@sd", "adapter_1": "@edge_adapter", "map_1": "@img"},
    "HiCASTStyleConditioning": {"style_encoder": "@style_encoder", "style_image": "@img"},
    "HiCASTApplyTemporalLayers": {"model": "@sd", "temporal_layers": "@temporal"},
    "HiCASTTrainAdapter": {"model": "@sd", "vae": "@sd_vae", "content_images": "@img", "maps": "@img",
                           "style_images": "@img", "conditioning": "@sd_cond", "output_name": "abuse_adapter.safetensors",
                           "steps": 1, "overwrite": True},
    "HiCASTTrainTemporalLayers": {"model": "@sd", "vae": "@sd_vae", "video": "@video", "conditioning": "@sd_cond",
                                  "output_name": "abuse_temporal.safetensors", "clip_frames": 2, "steps": 1,
                                  "overwrite": True},
    "StyleMotifModelLoader": {"model_name": "tiny_stylemotif.safetensors"},
    "StyleMotifEncodeStyle": {"model": "@sm", "motion": "@motion"},
    "StyleMotifStyleFromEmbedding": {"model": "@sm", "conditioning": "@sd_cond"},
    "StyleMotifBlendStyles": {"style_a": "@sm_style", "style_b": "@sm_style"},
    "StyleMotifStylize": {"model": "@sm", "style": "@sm_style", "positive": "@sd_cond", "negative": "@sd_cond",
                          "steps": 2, "frames": 8},
    "StyleMotifRenderSkeleton": {"motion": "@motion", "width": 32, "height": 32},
    "StyleMotifSaveMotion": {"motion": "@motion"},
    "StyleMotifLoadMotion": {"file": "abuse_walk.bvh"},
    "StyleMotifFineTuneStyle": {"base_model": "tiny_stylemotif.safetensors", "clip": "@clip_l", "dataset": "procedural",
                                "name": "abuse_ft", "overwrite": True, "style_pretrain_steps": 0, "stylization_steps": 1,
                                "alignment_steps": 1, "frames": 8, "clips": 20},
    "StyleMotifTrain": {"name": "abuse_sm", "clips": 20, "vae_steps": 1, "denoiser_steps": 1, "stylization_steps": 1,
                        "alignment_steps": 1, "latent_dim": 16, "overwrite": True},
}

# inputs that name a file or folder, with the kind of folder they must stay in (the coverage test checks
# that every STRING/COMBO input naming a file of every node is here, and that each has hostile rows)
PATH_INPUTS = {
    ("DreamStyleTokenLoRALoader", "lora_name"): "models",
    ("DreamStyleSavePair", "dataset_dir"): "output",
    ("DreamStyleSavePair", "pair_id"): "id",
    ("DreamStyleCheckDataset", "dataset_dir"): "output",
    ("DreamStyleTrainTokenLoRA", "dataset_dir"): "output",
    ("DreamStyleTrainTokenLoRA", "lora_name"): "name",
    ("DreamStyleTrainTokenLoRA", "init_lora"): "models",
    ("HiCASTAdapterLoader", "adapter_name"): "models",
    ("HiCASTTrainAdapter", "output_name"): "name",
    ("HiCASTTrainAdapter", "style_folder"): "input",
    ("HiCASTTrainTemporalLayers", "output_name"): "name",
    ("StyleMotifModelLoader", "model_name"): "models",
    ("StyleMotifSaveMotion", "filename_prefix"): "output",
    ("StyleMotifLoadMotion", "file"): "input",
    ("StyleMotifTrain", "name"): "name",
    ("StyleMotifFineTuneStyle", "dataset"): "input",
    ("StyleMotifFineTuneStyle", "name"): "name",
}

# hostile names for each kind of path input: (value, expected)
HOSTILE_PATHS = {
    "input": ["{abs}/secret.bvh", "{abs}/secret.npy", "{up}/secret.bvh", "sub/../{up}/secret.npy", "..\\..\\x.bvh",
              "C:\\secret.bvh"],
    "output": ["{abs}/pairs", "{up}/pairs", "{up}/new_set", "/tmp/abuse_new_set", "a/../../{up}/pairs", "C:\\sets"],
    "models": ["{abs}/victim.safetensors", "{upm}/victim.safetensors", "../loras/../{upm}/victim.safetensors"],
    "name": ["{abs}/victim", "{upm}/victim", "../victim", "sub/victim", "C:victim"],
    "id": ["{up}/x", "{abs}/x", "a/b", ".."],
}

ROWS = [
    *[(node, name, value, PATH) for (node, name), kind in PATH_INPUTS.items() for value in HOSTILE_PATHS[kind]],
    # planted pickles (code that would create a marker file): refused by name, never unpickled
    ("DreamStyleTokenLoRALoader", "lora_name", "abuse_evil.pt", r"safetensors|not a|refused|cannot"),
    ("HiCASTAdapterLoader", "adapter_name", "abuse_evil.pt", r"safetensors|not a|refused|cannot|Value not in list"),
    ("StyleMotifModelLoader", "model_name", "abuse_evil.pt", PATH),
    ("StyleMotifLoadMotion", "file", "abuse_evil.npy", r"pickle|object|not a|cannot"),
    # planted resume state where each trainer looks for it (tests/abuse/test_hostile_prompts.py: Host.plant)
    ("HiCASTTrainAdapter", "output_name", "abuse_resume.safetensors", ANY),
    ("HiCASTTrainTemporalLayers", "output_name", "abuse_resume_t.safetensors", ANY),
    ("StyleMotifTrain", "name", "abuse_resume", ANY),
    ("DreamStyleTrainTokenLoRA", "lora_name", "abuse_resume", ANY),
    # NaN/inf in tensors (a NaN blend or multiplier upstream: ComfyUI's validation lets the NaN through)
    ("DreamStyleConditioning", "video", "@nan_video", NOT_FINITE),
    ("DreamStyleDecode", "samples", "@nan_latent", NOT_FINITE),
    ("DreamStyleTrimLatent", "samples", "@nan_latent", NOT_FINITE),
    ("DreamStylePairFilter", "style_refs", "@nan_img", NOT_FINITE),
    ("DreamStyleSavePair", "raw_video", "@nan_video", NOT_FINITE),
    ("HiCASTEdgeMap", "image", "@nan_img", NOT_FINITE),
    ("HiCASTStyleConditioning", "style_image", "@nan_img", NOT_FINITE),
    ("HiCASTTrainAdapter", "content_images", "@nan_img", NOT_FINITE),
    # a 5-frame run's latent sampled with a 9-frame run's conditioning; the matched pair samples
    ("dreamstyle_pair9", "latent_image", "@cond:2", r"layout|belong|conditioning|frame"),
    ("dreamstyle_pair", "latent_image", "@cond:2", OK),
    # a 9-frame run's latent with a 5-frame run's conditioning (refused before ComfyUI's concat_cond)
    ("dreamstyle_pair", "latent_image", "@cond9:2", r"latent frames but the conditioning was built"),
    # another run with the same frame count
    ("dreamstyle_pair", "latent_image", "@cond_b:2", r"another DreamStyleConditioning run|latent pixels"),
    # oversized metadata: shapes in the file's metadata far beyond its tensors
    ("HiCASTAdapterLoader", "adapter_name", "abuse_huge_adapter.safetensors", r"metadata|config|limit|match|fit"),
    ("StyleMotifModelLoader", "model_name", "abuse_huge_stylemotif.safetensors", r"metadata|config|limit|match|fit"),
    ("DreamStyleTokenLoRALoader", "lora_name", "abuse_huge_lora.safetensors", r"metadata|rank|limit|match|fit"),
    # a NaN in one weight of a model file
    ("HiCASTAdapterLoader", "adapter_name", "abuse_nan_adapter.safetensors", NOT_FINITE),
    ("StyleMotifModelLoader", "model_name", "abuse_nan_stylemotif.safetensors", NOT_FINITE),
    ("DreamStyleTokenLoRALoader", "lora_name", "abuse_nan_lora.safetensors", NOT_FINITE),
    # 0-frame and 1-pixel media
    ("StyleMotifLoadMotion", "file", "abuse_empty.npy", r"frame|empty|shape"),
    ("DreamStyleConditioning", "video", "@pixel_video", OK),
    ("HiCASTEdgeMap", "image", "@pixel", r"2x2 pixels"),
]
# stock nodes fed by the pack's outputs: (class_type, inputs), used as row targets like TARGETS
SCENARIOS = {
    # a DreamStyle latent sampled with the conditioning of another run
    "dreamstyle_pair": ("KSampler", {"model": "@wan", "positive": "@cond:0", "negative": "@cond:1",
                                     "latent_image": "@cond:2", "steps": 1, "cfg": 1.0}),
    "dreamstyle_pair9": ("KSampler", {"model": "@wan", "positive": "@cond9:0", "negative": "@cond9:1",
                                      "latent_image": "@cond9:2", "steps": 1, "cfg": 1.0}),
}

# jobs run one after the other on one server: (case, [(target, {input: value}, expected), ...]); expected
# ("interrupt", n) interrupts the job once its progress passes n (its resume state then stays behind)
SEQUENCES = [
    ("StyleMotif resume of another job", [
        ("StyleMotifTrain", {"name": "abuse_job_sm", "vae_steps": 100000}, ("interrupt", 150)),
        ("StyleMotifTrain", {"name": "abuse_job_sm", "vae_steps": 100000, "latent_dim": 32}, r"another job")]),
    ("HiCAST resume with another seed", [
        ("HiCASTTrainAdapter", {"output_name": "abuse_job_hc", "steps": 100000}, ("interrupt", 40)),
        ("HiCASTTrainAdapter", {"output_name": "abuse_job_hc", "steps": 100000, "seed": 1}, r"seed")]),
    ("DreamStyle resume with another learning rate", [
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_ds", "steps": 100000, "save_every": 1}, ("interrupt", 2)),
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_ds", "steps": 100000, "lr": 1e-3}, r"lr: checkpoint")]),
    # existing models (the fixtures): never overwritten without the overwrite toggle
    *[(f"{node} keeps {name}", [(node, {key: name, "overwrite": False}, r"already exists")]) for node, key, name in (
        ("DreamStyleTrainTokenLoRA", "lora_name", "tiny_dreamstyle_token_lora"),
        ("HiCASTTrainAdapter", "output_name", "tiny_sd15_edge_adapter.safetensors"),
        ("HiCASTTrainTemporalLayers", "output_name", "tiny_sd15_temporal_layers.safetensors"),
        ("StyleMotifTrain", "name", "tiny_stylemotif"))],
    ("DreamStyle resume with another seed", [
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_seed", "save_every": 1}, OK),
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_seed", "save_every": 1, "steps": 2, "seed": 1,
                                      "overwrite": True}, r"seed")]),
    ("DreamStyle resume on another dataset", [
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_data", "save_every": 1}, OK),
        ("DreamStyleTrainTokenLoRA", {"lora_name": "abuse_job_data", "save_every": 1, "steps": 2,
                                      "dataset_dir": "abuse_pairs2", "overwrite": True}, r"dataset")]),
]

# nodes whose base graph cannot run here (an optional model the server does not have)
NEEDS_OPTIONAL_MODEL = set()
