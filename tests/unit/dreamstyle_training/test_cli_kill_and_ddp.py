"""The torchrun CLI with the toy model: kill -9 mid-run then resume ends with the uninterrupted run's
LoRA; two gloo processes give the one-process loss curve for the same global batch, also with the base
sharded over them (shard_base)."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from dreamstyle.lora_file import read_safetensors

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CLI = os.path.join(ROOT, "scripts", "train_dreamstyle.py")
FACTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy_wan.py") + ":build"
PROBED = FACTORY + "_probed"
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
pytestmark = pytest.mark.slow


def config(tmp_path, name, dataset, steps=10, factory=FACTORY, **train):
    cfg = {"dataset": dataset, "run_dir": str(tmp_path / name), "output": str(tmp_path / f"{name}.safetensors"),
           "loss_log": str(tmp_path / f"{name}.jsonl"), "model": {"factory": factory},
           "train": {"steps": steps, "rank": 4, "lr": 3e-3, "batch": 2, "save_every": 2, **train}}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def run(args, **kw):
    """(the CLI's result line, its stderr)"""
    out = subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=300, **kw)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def torchrun(port, *args):
    return run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port), *args])


def assert_same_curve_and_lora(one, two):
    """Tolerance: every loss within 1e-4 relative; every LoRA tensor within 1e-3 of its norm (the all-reduce
    sums gradients in another order, and AdamW's normalised first steps amplify float rounding in
    near-zero gradients)."""
    assert len(two["losses"]) == len(one["losses"])
    assert two["losses"] == pytest.approx(one["losses"], rel=1e-4)
    a, _ = read_safetensors(one["output"])
    b, _ = read_safetensors(two["output"])
    assert a.keys() == b.keys()
    assert all(float((a[k] - b[k]).norm()) <= 1e-3 * float(a[k].norm()) for k in a if a[k].ndim)


def test_kill_9_then_resume_equals_an_uninterrupted_run(synthetic_dataset, tmp_path):
    full, _ = run([CLI, "--config", config(tmp_path, "full", synthetic_dataset)])
    cfg = config(tmp_path, "killed", synthetic_dataset)
    latest = tmp_path / "killed" / "checkpoints" / "latest.json"
    proc = subprocess.Popen([sys.executable, CLI, "--config", cfg], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    killed_at = json.loads(latest.read_text())["step"]
    assert 4 <= killed_at < 10 and not (tmp_path / "killed.safetensors").exists()
    resumed, _ = run([CLI, "--config", cfg])
    assert resumed["step"] == 10 and resumed["losses"] == full["losses"]
    a, _ = read_safetensors(full["output"])
    b, _ = read_safetensors(resumed["output"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_gloo_processes_give_the_one_process_loss_curve(synthetic_dataset, tmp_path):
    """Same global batch (2): 1 process x 2 samples vs 2 processes x 1 sample."""
    one, _ = run([CLI, "--config", config(tmp_path, "one", synthetic_dataset, steps=6)])
    two, _ = torchrun(29517, CLI, "--config", config(tmp_path, "two", synthetic_dataset, steps=6))
    assert_same_curve_and_lora(one, two)


def test_base_sharded_over_two_gloo_processes_gives_the_one_process_loss_curve(synthetic_dataset, tmp_path):
    """shard_base "fsdp", and "fsdp_offload" with gradient checkpointing, over 2 processes vs 1 process with
    the whole base, same global batch and tolerance as above. Each process holds only its shard of the
    base (the two shards make up the base), the model object itself is emptied during the run, every
    LoRA'd layer runs with its whole, unchanged weight (twice per step with checkpointing: forward and
    recomputation), and the model comes back as it was."""
    steps, layers = 6, 2 * 6  # the toy's 2 blocks x (q, k, v, o, ffn.0, ffn.2)
    probe = lambda name, rank: json.loads((tmp_path / name / f"probe.{rank}.json").read_text())
    one, _ = run([CLI, "--config", config(tmp_path, "one", synthetic_dataset, steps=steps, factory=PROBED)])
    whole = probe("one", 0)["model_elements_max"]
    assert probe("one", 0) == {"calls": steps * layers, "whole_weight_calls": steps * layers,
                               "model_elements_max": whole, "restored": True}
    for mode, checkpointing in (("fsdp", False), ("fsdp_offload", True)):
        two, log = torchrun(29518, CLI, "--config", config(tmp_path, mode, synthetic_dataset, steps=steps,
                                                            factory=PROBED, shard_base=mode,
                                                            gradient_checkpointing=checkpointing))
        assert_same_curve_and_lora(one, two)
        held = dict(re.findall(r"\[rank (\d)\] .*holds (\d+) of %d base parameter elements" % whole, log))
        assert held.keys() == {"0", "1"}, log[-3000:]
        assert all(0 < int(n) < whole for n in held.values()) and sum(map(int, held.values())) == whole
        calls = steps * layers * (2 if checkpointing else 1)
        for rank in (0, 1):
            assert probe(mode, rank) == {"calls": calls, "whole_weight_calls": calls, "model_elements_max": 0,
                                         "restored": True}


def test_plan_prints_the_memory_plan_and_block_swap_trains(tmp_path, synthetic_dataset):
    """`--plan` prints the plan (no training) with what sublayer checkpointing would need; the same config with
    block_swap, and with sublayer checkpointing, trains to the unswapped LoRA."""
    cfg = config(tmp_path, "plan", synthetic_dataset, steps=2, gradient_checkpointing=True, block_swap=1)
    out = subprocess.run([sys.executable, CLI, "--config", cfg, "--plan", "--frames", "81"], env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["settings"]["block_swap"] == 1 and plan["settings"]["frames"] == 81 and plan["peak_gb"] > 0
    assert "LoRA + grads + AdamW" in out.stdout and not os.path.exists(tmp_path / "plan")  # nothing trained
    assert "with checkpoint_granularity sublayer" in out.stdout and 0 < plan["sublayer_peak_gb"] < plan["peak_gb"]
    swapped, _ = run([CLI, "--config", cfg])
    plain, _ = run([CLI, "--config", config(tmp_path, "noswap", synthetic_dataset, steps=2,
                                            gradient_checkpointing=True)])
    sublayer, _ = run([CLI, "--config", config(tmp_path, "sublayer", synthetic_dataset, steps=2, block_swap=1,
                                               gradient_checkpointing=True, checkpoint_granularity="sublayer")])
    assert swapped["losses"] == plain["losses"] == sublayer["losses"]
    a, b, c = (read_safetensors(r["output"])[0] for r in (swapped, plain, sublayer))
    assert all(torch.equal(a[k], b[k]) and torch.equal(a[k], c[k]) for k in a)
