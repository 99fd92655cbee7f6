"""The training core on a toy Wan-shaped model: learning, LoRA-only, cache, determinism, resume,
checkpoint refusal, SFT from CT, accumulation, checkpointing, bf16, plain vs token LoRA, shard_base on
one process."""
import logging
import os

import pytest
import torch
from toy_wan import ToyWan, toy_encoders

from dreamstyle.lora_file import read_safetensors
from dreamstyle.training import DreamStyleTrainer, TrainConfig
from dreamstyle.training_checkpoint import CheckpointError, latest_checkpoint

FAST = dict(rank=4, lr=3e-3, batch=2)


def train(dataset, run_dir, model=None, encoders=None, output=None, **kw):
    model = model or ToyWan()
    encoders = encoders or toy_encoders()
    cfg = TrainConfig(**{**FAST, **kw})
    trainer = DreamStyleTrainer(model, encoders, dataset, cfg, run_dir)
    return trainer, trainer.run(output)


def lora_state(loras):
    return {f"{n}.{k}": v.detach().clone() for n, l in loras.items() for k, v in l.state_dict().items()}


def test_loss_decreases_and_only_the_lora_changes(synthetic_dataset, tmp_path):
    model = ToyWan()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {k: p.requires_grad for k, p in model.named_parameters()}
    cfg = TrainConfig(**dict(FAST, lr=1e-2), steps=30)
    trainer = DreamStyleTrainer(model, toy_encoders(), synthetic_dataset, cfg, tmp_path / "run")
    fixed = range(1000, 1012)  # held-fixed evaluation batches (same samples, noise, σ each time)
    start = trainer.evaluate(fixed)
    result = trainer.run(str(tmp_path / "o.safetensors"))
    assert len(result.losses) == 30
    assert trainer.evaluate(fixed) < 0.93 * start
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # base bit-identical
    assert {k: p.requires_grad for k, p in model.named_parameters()} == flags
    assert any(float(lora.up.detach().abs().max()) > 0 for lora in result.loras.values())  # the LoRA learned
    tensors, meta = read_safetensors(str(tmp_path / "o.safetensors"))
    assert meta["format"] == "dreamstyle_token_lora" and meta["stage"] == "CT" and meta["steps"] == "30"
    assert "blocks.0.self_attn.q.lora_up.style_image.weight" in tensors


def test_second_epoch_reads_the_cache_and_calls_no_encoder(synthetic_dataset, tmp_path):
    enc = toy_encoders()
    cfg = TrainConfig(**FAST, steps=2, ratio="0:0:1")  # 4 train pairs, batch 2: one epoch in 2 steps
    trainer = DreamStyleTrainer(ToyWan(), enc, synthetic_dataset, cfg, tmp_path / "run")
    assert len(trainer.pairs) == 4
    trainer.run()
    first_epoch = (enc.vae_encode.calls, enc.text_encode.calls)
    assert first_epoch == (4 * 3, 2)  # raw, stylized, first frame per pair; t_ns per scene (text is keyed by content)
    trainer.config.steps = 4  # the second epoch
    trainer.run()
    assert (enc.vae_encode.calls, enc.text_encode.calls) == first_epoch
    assert trainer.cache.hits >= 4 * 4


def test_precomputed_features_leave_training_without_encoder_calls(synthetic_dataset, tmp_path):
    enc = toy_encoders()
    cfg = TrainConfig(**FAST, steps=3, ratio="1:2:1")
    trainer = DreamStyleTrainer(ToyWan(), enc, synthetic_dataset, cfg, tmp_path / "run")
    trainer.data.encode_all()
    calls = (enc.vae_encode.calls, enc.text_encode.calls, enc.clip_vision_encode.calls)
    assert calls == (4 * (3 + 2), 2 + 4, 4 * 2)  # per pair: 2 videos, first frame, 2 refs; per scene t_ns, per pair t_sty
    trainer.run()
    assert (enc.vae_encode.calls, enc.text_encode.calls, enc.clip_vision_encode.calls) == calls


def test_runs_are_deterministic_and_resume_equals_an_uninterrupted_run(synthetic_dataset, tmp_path):
    _, full = train(synthetic_dataset, tmp_path / "full", steps=8)
    _, again = train(synthetic_dataset, tmp_path / "again", steps=8)
    assert all(torch.equal(a, b) for a, b in zip(lora_state(full.loras).values(), lora_state(again.loras).values()))
    _, part = train(synthetic_dataset, tmp_path / "part", steps=3, save_every=3)
    trainer, resumed = train(synthetic_dataset, tmp_path / "part", steps=8, save_every=3)
    assert trainer.history[2]["step"] == 3 and resumed.step == 8
    assert resumed.losses == full.losses
    want, got = lora_state(full.loras), lora_state(resumed.loras)
    assert all(torch.equal(want[k], got[k]) for k in want)


def test_truncated_checkpoint_is_refused_with_a_clear_error(synthetic_dataset, tmp_path):
    train(synthetic_dataset, tmp_path / "run", steps=2)
    ckpt = latest_checkpoint(str(tmp_path / "run" / "checkpoints"))
    path = os.path.join(ckpt, "lora.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(CheckpointError, match=r"truncated or damaged.*refused"):
        train(synthetic_dataset, tmp_path / "run", steps=4)
    state = os.path.join(ckpt, "state.safetensors")
    os.remove(path)
    with pytest.raises(CheckpointError, match="missing"):
        train(synthetic_dataset, tmp_path / "run", steps=4)
    assert os.path.exists(state)


def test_resume_refuses_changed_settings(synthetic_dataset, tmp_path):
    train(synthetic_dataset, tmp_path / "run", steps=2)
    with pytest.raises(CheckpointError, match="lr"):
        train(synthetic_dataset, tmp_path / "run", steps=4, lr=1e-4)


def test_shard_base_on_one_process_trains_the_whole_base_and_does_not_block_a_resume(synthetic_dataset, tmp_path,
                                                                                    caplog):
    """Sharding needs several processes: one process trains unsharded, with a warning naming shard_base,
    and gives the plain run's losses; a checkpoint resumes with another shard_base (not a trajectory
    setting)."""
    _, plain = train(synthetic_dataset, tmp_path / "plain", steps=4)
    train(synthetic_dataset, tmp_path / "run", steps=2, save_every=2)
    with caplog.at_level(logging.WARNING, logger="UniStyle"):
        trainer, resumed = train(synthetic_dataset, tmp_path / "run", steps=4, shard_base="fsdp_offload")
    assert trainer.history[1]["step"] == 2 and resumed.losses == plain.losses
    assert "shard_base 'fsdp_offload' needs several processes" in caplog.text
    with pytest.raises(ValueError, match="shard_base"):
        TrainConfig(shard_base="zero3")


def test_sft_starts_from_the_ct_lora(synthetic_dataset, tmp_path):
    ct_path = str(tmp_path / "ct.safetensors")
    _, ct = train(synthetic_dataset, tmp_path / "ct", steps=6, output=ct_path)
    cfg = TrainConfig(**dict(FAST, lr=1e-3), stage="SFT", steps=3)
    sft = DreamStyleTrainer(ToyWan(), toy_encoders(), synthetic_dataset, cfg, tmp_path / "sft", init_lora=ct_path)
    start = lora_state(sft.loras)
    want = lora_state(ct.loras)
    assert all(torch.allclose(want[k], start[k]) for k in want)
    out = str(tmp_path / "sft.safetensors")
    sft.run(out)
    meta = read_safetensors(out)[1]
    assert meta["stage"] == "SFT" and meta["init_lora_sha256"] == read_safetensors(ct_path)[1]["sha256"]
    with pytest.raises(ValueError, match="init_lora"):
        bad = str(tmp_path / "bad.safetensors")
        open(bad, "wb").write(open(ct_path, "rb").read()[:100])
        DreamStyleTrainer(ToyWan(), toy_encoders(), synthetic_dataset, cfg, tmp_path / "sft2", init_lora=bad)


def test_accumulation_equals_a_larger_batch(synthetic_dataset, tmp_path):
    """One condition (so both draw the same samples): batch 2 x 1 == batch 1 x 2 accumulated."""
    _, big = train(synthetic_dataset, tmp_path / "a", steps=3, batch=2, accumulation=1, ratio="0:0:1")
    _, acc = train(synthetic_dataset, tmp_path / "b", steps=3, batch=1, accumulation=2, ratio="0:0:1")
    a, b = lora_state(big.loras), lora_state(acc.loras)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert big.losses == pytest.approx(acc.losses, rel=1e-4)


def test_gradient_checkpointing_gives_the_same_training(synthetic_dataset, tmp_path, monkeypatch):
    import dreamstyle.training_block_swap as streaming
    _, plain = train(synthetic_dataset, tmp_path / "a", steps=3)
    calls = []
    real = streaming.checkpointed
    monkeypatch.setattr(streaming, "checkpointed", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = ToyWan()
    _, ckpt = train(synthetic_dataset, tmp_path / "b", model=model, steps=3, gradient_checkpointing=True)
    assert ckpt.losses == pytest.approx(plain.losses, rel=1e-5)
    assert len(calls) == 3 * len(model.blocks)  # every block of every step ran checkpointed
    assert "forward" not in model.blocks[0].__dict__  # unwrapped after the run


def test_bf16_and_plain_lora(synthetic_dataset, tmp_path):
    _, bf16 = train(synthetic_dataset, tmp_path / "a", steps=3, precision="bf16")
    assert all(torch.isfinite(torch.tensor(bf16.losses)))
    out = str(tmp_path / "plain.safetensors")
    _, _ = train(synthetic_dataset, tmp_path / "b", steps=3, token_specific=False, output=out)
    tensors, meta = read_safetensors(out)
    name = "blocks.1.ffn.0"
    ups = [tensors[f"{name}.lora_up.{t}.weight"] for t in ("first_frame", "video", "style_image")]
    assert meta["token_specific"] == "False" and torch.equal(ups[0], ups[1]) and torch.equal(ups[1], ups[2])
    assert float(ups[1].abs().max()) > 0


def test_input_perturbation_moves_the_input_not_the_clean_latent(synthetic_dataset, tmp_path):
    """γ > 0 changes the model input and the target of the same sample, σ and ε, and x_t - σ v is still z^sty."""
    batches = []
    for gamma in (0.0, 0.5):
        t = DreamStyleTrainer(ToyWan(), toy_encoders(), synthetic_dataset,
                              TrainConfig(**FAST, input_perturbation=gamma), tmp_path / str(gamma))
        batches.append(t.micro_batch(3, 0))
    (cond, layout, x, target, ts, _, _), (cond_p, _, x_p, target_p, ts_p, _, _) = batches
    assert cond == cond_p and torch.equal(ts, ts_p)
    assert not torch.allclose(x[:, :16], x_p[:, :16]) and torch.equal(x[:, 16:], x_p[:, 16:])
    s, vid = (ts / 1000).view(-1, 1, 1, 1, 1), layout.video_slice
    assert torch.allclose(x_p[:, :16, vid] - s * target_p[:, :, vid], x[:, :16, vid] - s * target[:, :, vid], atol=1e-5)
    with pytest.raises(ValueError, match="input_perturbation"):
        TrainConfig(input_perturbation=-0.1)


def test_bad_inputs_name_the_input(synthetic_dataset, tmp_path):
    with pytest.raises(ValueError, match="dataset_dir"):
        train(str(tmp_path / "nowhere"), tmp_path / "run", steps=1)
    with pytest.raises(ValueError, match="stage"):
        TrainConfig(stage="XX")
    with pytest.raises(ValueError, match="dataset_dir.*split"):
        DreamStyleTrainer(ToyWan(), toy_encoders(), synthetic_dataset, TrainConfig(split="nope"), tmp_path / "r")
    with pytest.raises(ValueError, match="block_swap: expected 0..2"):
        DreamStyleTrainer(ToyWan(), toy_encoders(), synthetic_dataset,
                          TrainConfig(block_swap=3, gradient_checkpointing=True), tmp_path / "r")
    with pytest.raises(ValueError, match="block_swap: needs gradient_checkpointing"):
        TrainConfig(block_swap=1)
    narrow = toy_encoders()
    wide = narrow.clip_vision_encode
    narrow.clip_vision_encode = lambda image: wide(image)[..., :1024]  # a ViT-L's width for Wan's ViT-H branch
    with pytest.raises(ValueError, match="clip_vision: its features are 1024 wide, the model's image branch takes 1280"):
        DreamStyleTrainer(ToyWan(), narrow, synthetic_dataset, TrainConfig(), tmp_path / "clip")
