"""`oodbench train clipn`: data order, schedule, training, exact resume, NaN handling, CLI, shards."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from clipn_helpers import write_pairs_csv, write_shards
from safetensors.torch import load_file
from typer.testing import CliRunner

import oodbench.methods.clipn.trainer as trainer_mod
from oodbench.errors import DataError, TrainingError
from oodbench.methods.clipn.data import CsvPairs, StepPlan, TarPairs, expand_shards, open_pairs
from oodbench.methods.clipn.losses import ClipnLoss
from oodbench.methods.clipn.trainer import TrainConfig, cosine_lr, no_decay, param_groups, train


def config(data, out, **kw) -> TrainConfig:
    base = dict(model="oodbench-tiny", pretrained="none", epochs=2, batch_size=8, workers=0, log_every=1,
                lr=1e-3, progress=False)
    return TrainConfig(data=str(data), out=out, **{**base, **kw})


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# --------------------------------------------------------------------------------------------- pure parts
def test_step_plan_is_a_function_of_seed_and_epoch_and_splits_ranks():
    plans = [StepPlan(50, 4, world_size=2, rank=r, accum_steps=2, seed=3) for r in range(2)]
    assert plans[0].steps_per_epoch == 3  # 50 // (4 * 2 * 2)
    per_rank = [list(p.micro_batches(0, 6)) for p in plans]
    assert all(len(b) == 12 and all(len(x) == 4 for x in b) for b in per_rank)
    for step_batches in zip(*per_rank):  # ranks never overlap within a micro-batch
        assert not {i for _, i in step_batches[0]} & {i for _, i in step_batches[1]}
    epoch0 = [i for b in per_rank[0][:6] + per_rank[1][:6] for e, i in b]
    assert len(set(epoch0)) == 48 and {e for b in per_rank[0] for e, _ in b} == {0, 1}
    resumed = list(plans[0].micro_batches(4, 6))
    assert resumed == per_rank[0][8:]  # the position is the step count
    assert not torch.equal(plans[0].permutation(0), plans[0].permutation(1))
    assert torch.equal(plans[0].permutation(1), StepPlan(50, 4, seed=3).permutation(1))


def test_cosine_schedule_and_weight_decay_groups(tiny_backbone):
    assert cosine_lr(0, 1.0, 10) == 1.0 and cosine_lr(5, 1.0, 10) == pytest.approx(0.5)
    assert cosine_lr(9, 1.0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
    assert [cosine_lr(s, 1.0, 10, warmup=4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert cosine_lr(4, 1.0, 10, warmup=4) == 1.0
    from oodbench.methods.clipn.model import CLIPN

    no = CLIPN(tiny_backbone.model).no
    named = dict(no.named_parameters())
    keep, decay = param_groups(no.named_parameters(), 0.2)
    assert keep["weight_decay"] == 0.0 and decay["weight_decay"] == 0.2
    decayed = {n for n, p in named.items() if any(p is q for q in decay["params"])}
    assert {"prompt_no", "token_embedding_no.weight", "positional_embedding_no", "text_projection_no",
            "transformer_no.resblocks.0.attn.in_proj_weight"} <= decayed
    assert not any("ln_" in n or "bias" in n for n in decayed)
    assert no_decay("ln_final_no.weight", named["ln_final_no.weight"])
    assert len(keep["params"]) + len(decay["params"]) == len(named)


def test_csv_reading_and_errors(tmp_path):
    path = write_pairs_csv(tmp_path / "c", 3, sep=",")
    pairs = open_pairs(str(path))
    assert isinstance(pairs, CsvPairs) and len(pairs) == 3
    image, caption = pairs.load(1)
    assert image.size == (40, 36) and caption.startswith("a ")
    with pytest.raises(DataError, match=r"columns \['filepath', 'title'\].*--image-column"):
        CsvPairs(path, image_column="path")
    (tmp_path / "c" / "img" / "0002.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="0002.png"):
        pairs.load(2)


def test_shards_are_indexed_like_webdataset(tmp_path):
    shards = write_shards(tmp_path / "wds", 10, per_shard=4)
    pairs = open_pairs(str(tmp_path / "wds" / "shard-{000..002}.tar"))
    assert isinstance(pairs, TarPairs) and len(pairs) == 10
    assert expand_shards(str(tmp_path / "wds")) == shards
    assert expand_shards(str(tmp_path / "wds" / "*.tar")) == shards
    image, caption = pairs.load(9)
    assert image.size == (40, 36) and caption.startswith("a ")
    with pytest.raises(DataError, match="No WebDataset shard"):
        expand_shards(str(tmp_path / "wds" / "shard-{000..005}.tar"))


# --------------------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_lowers_the_loss(tmp_path, pairs_csv):
    result = train(config(pairs_csv, tmp_path / "run", epochs=4))  # 6 steps per epoch: 24 steps
    assert result.step == result.total_steps == 24
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 25))
    first = sum(r["loss"] for r in log[:4]) / 4
    last = sum(r["loss"] for r in log[-4:]) / 4
    assert last < first - 0.2, (first, last)
    assert {"loss_yes", "loss_no", "loss_tso", "lr", "samples_per_s"} <= set(log[0])
    config_json = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config_json["steps_per_epoch"] == 6 and config_json["precision_used"] == "fp32"


@pytest.mark.slow
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, caplog):
    pairs_csv = write_pairs_csv(tmp_path / "pairs", 24)
    full = train(config(pairs_csv, tmp_path / "full"))  # 2 epochs x 3 steps

    def crash(step, losses):
        if step == 5:
            raise KeyboardInterrupt  # killed after step 5; the last checkpoint is step 4

    cfg = config(pairs_csv, tmp_path / "cut", save_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, on_step=crash)
    state = torch.load(tmp_path / "cut" / "checkpoints" / "step-00000004" / "state.pt", weights_only=True)
    assert state["step"] == 4
    with pytest.raises(TrainingError, match="--resume"):
        train(cfg)  # no silent overwrite
    with pytest.raises(TrainingError, match="batch_size"):
        train(replace(cfg, resume=True, batch_size=4))
    resumed = train(replace(cfg, resume=True))
    assert resumed.step == full.step == 6
    assert_same_weights(full.weights, resumed.weights)
    assert sha256(full.weights) == sha256(resumed.weights)  # byte-identical files, not only equal tensors
    log = [json.loads(line)["step"] for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert log == list(range(1, 7))  # the interrupted attempt's step 5 was dropped, then redone

    # stopping with --max-steps and resuming without it also lands on the same weights
    short = train(config(pairs_csv, tmp_path / "short", max_steps=2))
    assert short.step == 2
    assert_same_weights(train(config(pairs_csv, tmp_path / "short", resume=True)).weights, full.weights)

    # a damaged latest checkpoint: --resume says so, goes back to the one before, and still ends equal
    cut = config(pairs_csv, tmp_path / "damaged", save_every=2)
    with pytest.raises(KeyboardInterrupt):
        train(cut, on_step=crash)
    (tmp_path / "damaged" / "checkpoints" / "step-00000004" / "state.pt").write_bytes(b"")
    with caplog.at_level("WARNING"):
        again = train(replace(cut, resume=True))
    assert "step-00000004" in caplog.text and "resuming from step-00000003" in caplog.text  # the end of epoch 1
    assert sha256(again.weights) == sha256(full.weights)


def sha256(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "-0.001", "--lr is -0.001, but it must be a positive finite number"),
    ("--lr", "nan", "--lr is nan, but it must be a positive finite number"),
    ("--beta2", "1.0", "--beta2 is 1.0, but it must be in [0, 1)"),
    ("--eps", "0", "--eps is 0.0, but it must be a positive finite number"),
])
def test_settings_outside_their_domain_are_refused_before_any_work(tmp_path, option, value, message):
    import typer

    from oodbench.cli import _Group
    from oodbench.methods.clipn.command import train_clipn

    app = typer.Typer(cls=_Group)
    app.command()(train_clipn)
    app.command("noop")(lambda: None)  # two commands: the group (and its error handling) is used
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train-clipn", "--data", str(tmp_path / "missing.csv"), "--out", str(out),
                                      "--model", "oodbench-tiny", "--pretrained", "none", option, value])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not out.exists()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, pairs_csv, monkeypatch):
    real = trainer_mod.clipn_loss
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        out = real(*args, **kwargs)
        if calls["n"] == 3:
            nan = out.total * float("nan")
            return ClipnLoss(nan, out.yes, out.no, out.tso)
        return out

    monkeypatch.setattr(trainer_mod, "clipn_loss", flaky)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"loss became nan at step 3.*step-00000002"):
        train(config(pairs_csv, out, save_every=2))
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-00000002"]
    assert json.loads(weights_meta(out / "clipn.safetensors"))["step"] == 2


def weights_meta(path):
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata()["oodbench_clipn"]


def test_cli_with_max_steps_on_shards_and_handcrafted(tmp_path):
    import typer

    from oodbench.methods.clipn.command import train_clipn

    write_shards(tmp_path / "wds", 20, per_shard=8)
    app = typer.Typer()
    app.command()(train_clipn)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "--data", str(tmp_path / "wds"), "--out", str(out), "--model", "oodbench-tiny",
        "--pretrained", "none",
        "--variant", "handcrafted", "--batch-size", "4", "--workers", "0", "--max-steps", "3",
        "--epochs", "1", "--log-every", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("clipn.safetensors")
    meta = json.loads(weights_meta(out / "clipn.safetensors"))
    assert meta["step"] == 3 and meta["variant"] == "handcrafted" and meta["n_prompts"] == 0
    assert meta["steps_per_epoch"] == 5 and meta["data"]["kind"] == "webdataset"


def test_too_little_data_for_one_step(tmp_path):
    path = write_pairs_csv(tmp_path / "few", 3)
    with pytest.raises(TrainingError, match="fewer than one optimiser step.*--batch-size"):
        train(config(path, tmp_path / "run"))


def test_bf16_autocast_with_accumulation_and_warmup_on_the_cpu(tmp_path, pairs_csv):
    result = train(config(pairs_csv, tmp_path / "bf16", precision="bf16", accum_steps=2, warmup=2, max_steps=2,
                          grad_checkpointing=True))
    assert result.step == 2 and all(math.isfinite(v) for v in result.last.values())
    log = [json.loads(line) for line in (tmp_path / "bf16" / "log.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in log] == pytest.approx([0.5e-3, 1e-3])  # warm-up: lr * (step + 1) / 2
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["precision_used"] == "bf16"
