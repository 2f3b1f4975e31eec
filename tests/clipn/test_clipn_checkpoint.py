"""Checkpoint I/O: oodbench's compact files, the released layout, and refusing wrong backbones."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.errors import CheckpointError
from oodbench.methods.clipn.checkpoint import (
    backbone_fingerprint,
    checkpoint_meta,
    latest_checkpoint,
    load_clipn,
    read_checkpoint,
    resolve_checkpoint,
    save_weights,
    write_checkpoint,
)
from oodbench.methods.clipn.model import CLIPN


def trained_like(model: torch.nn.Module, n_prompts: int = 16, seed: int = 3) -> CLIPN:
    """A CLIPN whose "no" tower differs from its initial copy (as after training)."""
    clipn = CLIPN(model, n_prompts)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in clipn.no.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return clipn.eval()


def official_file(path: Path, clipn: CLIPN, rename: dict[str, str] | None = None) -> Path:
    """A file in the released layout: torch.save({epoch, name, state_dict (module.*), optimizer, scaler})."""
    state = {**clipn.clip.state_dict(), **clipn.no.state_dict()}
    state = {f"module.{k}": v.clone() for k, v in state.items()}
    for old, new in (rename or {}).items():
        state[new] = state.pop(old)
    blob = {"epoch": 10, "name": "clipn-repeat1", "state_dict": state,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0, "betas": (0.9, 0.98), "params": [0, 1]}]},
            "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                       "growth_interval": 2000}}
    torch.save(blob, path)
    return path


def same_no_state(a: CLIPN, b: CLIPN) -> bool:
    sa, sb = a.no.state_dict(), b.no.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_compact_round_trip_holds_only_the_trainable_part(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    path = tmp_path / "clipn.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, tiny_backbone.identity, step=7))
    ckpt = read_checkpoint(path)
    assert ckpt.kind == "oodbench" and ckpt.meta["step"] == 7 and ckpt.variant == "learnable"
    assert set(ckpt.no_state) == set(clipn.no.state_dict())  # nothing of the frozen backbone
    loaded, _ = load_clipn(path, tiny_backbone.model, tiny_backbone.identity)
    assert same_no_state(loaded, clipn)
    assert not loaded.no.training


def test_compact_file_refuses_another_backbone(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    path = tmp_path / "clipn.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, tiny_backbone.identity))
    other = Backbone.load(BackboneSpec("oodbench-tiny", "none", seed=1))
    assert backbone_fingerprint(other.model) != backbone_fingerprint(tiny_backbone.model)
    with pytest.raises(CheckpointError, match="trained on another backbone"):
        load_clipn(path, other.model, other.identity)


def test_handcrafted_variant_round_trip(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model, n_prompts=0)
    path = tmp_path / "hc.safetensors"
    save_weights(path, clipn, checkpoint_meta(clipn, tiny_backbone.identity))
    loaded, ckpt = load_clipn(path, tiny_backbone.model)
    assert ckpt.variant == loaded.variant == "handcrafted" and "prompt_no" not in ckpt.no_state
    assert same_no_state(loaded, clipn)


def test_official_layout_round_trip(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    path = official_file(tmp_path / "epoch_10.pt", clipn)
    loaded, ckpt = load_clipn(path, tiny_backbone.model)
    assert ckpt.kind == "official" and ckpt.meta["epoch"] == 10
    assert same_no_state(loaded, clipn)


def test_official_layout_with_averaged_prompt(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    path = official_file(tmp_path / "laft.pt", clipn)
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["module.prompt_no"] = blob["state_dict"]["module.prompt_no"].mean(0)  # [77, width]
    torch.save(blob, path)
    loaded, _ = load_clipn(path, tiny_backbone.model)
    assert loaded.no.prompt_no.shape[0] == 1
    assert torch.allclose(loaded.no.prompt_offset(), clipn.no.prompt_offset(), atol=1e-7)


def test_official_renamed_key_fails_with_the_lists(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    path = official_file(tmp_path / "bad.pt", clipn, rename={
        "module.transformer_no.resblocks.0.attn.in_proj_weight":
            "module.transformer_no.resblocks.0.attn.in_proj.weight",
        "module.ln_final.weight": "module.ln_final_yes.weight"})
    with pytest.raises(CheckpointError) as err:
        load_clipn(path, tiny_backbone.model)
    msg = str(err.value)
    assert "Missing keys (2): ln_final.weight, transformer_no.resblocks.0.attn.in_proj_weight" in msg
    assert "Unexpected keys (2): ln_final_yes.weight, transformer_no.resblocks.0.attn.in_proj.weight" in msg


def test_official_file_must_carry_this_backbone(tmp_path, tiny_backbone):
    other = Backbone.load(BackboneSpec("oodbench-tiny", "none", seed=1))
    path = official_file(tmp_path / "other.pt", trained_like(other.model))
    with pytest.raises(CheckpointError, match="differ from the loaded backbone"):
        load_clipn(path, tiny_backbone.model)


def test_pickled_code_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "hook": pickle.loads(pickle.dumps(Path("x")))}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nope.pt")


def test_resolve_checkpoint_messages(tmp_path):
    with pytest.raises(CheckpointError, match="--clipn-checkpoint FILE.*oodbench train clipn"):
        resolve_checkpoint(None)
    with pytest.raises(CheckpointError, match="neither an existing file nor a bundled"):
        resolve_checkpoint(tmp_path / "missing.safetensors")


def test_write_checkpoint_is_a_complete_folder_and_latest(tmp_path, tiny_backbone):
    clipn = trained_like(tiny_backbone.model)
    meta = checkpoint_meta(clipn, tiny_backbone.identity)
    for step in (2, 4, 6):
        write_checkpoint(tmp_path, step, clipn, meta, {"step": step}, keep_last=2)
    (tmp_path / "checkpoints" / "step-00000008").mkdir()  # an incomplete folder is never picked
    assert latest_checkpoint(tmp_path).name == "step-00000006"
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-0*")) == [
        "step-00000004", "step-00000006", "step-00000008"]
    assert (tmp_path / "clipn.safetensors").is_file()
    assert not list((tmp_path / "checkpoints").glob(".tmp*"))


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint_and_says_how_to_go_on(
        tmp_path, tiny_backbone, monkeypatch):
    import errno

    from oodbench.errors import OodbenchError

    clipn = trained_like(tiny_backbone.model)
    meta = checkpoint_meta(clipn, tiny_backbone.identity)
    write_checkpoint(tmp_path, 1, clipn, meta, {"step": 1})
    before = (tmp_path / "clipn.safetensors").read_bytes()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OodbenchError, match=r"No space left on device.*--resume.*step-00000001"):
        write_checkpoint(tmp_path, 2, clipn, meta, {"step": 2})
    ckpts = tmp_path / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["LATEST", "step-00000001"]  # no temporaries
    assert (ckpts / "LATEST").read_text().strip() == "step-00000001"
    assert (tmp_path / "clipn.safetensors").read_bytes() == before


def test_the_weights_file_depends_only_on_the_tensors_and_the_header_facts(tmp_path, tiny_backbone):
    import hashlib
    import json

    from oodbench.methods.clipn.checkpoint import RUN_NAME

    clipn = trained_like(tiny_backbone.model)
    meta = checkpoint_meta(clipn, tiny_backbone.identity, step=3)
    a = write_checkpoint(tmp_path / "a", 3, clipn, meta, {"step": 3}, facts={"created": "monday", "out": "a"})
    b = write_checkpoint(tmp_path / "b", 3, clipn, meta, {"step": 3}, facts={"created": "tuesday", "out": "b"})
    digest = [hashlib.sha256((p / "clipn.safetensors").read_bytes()).hexdigest() for p in (a, b)]
    assert digest[0] == digest[1]
    assert json.loads((b / RUN_NAME).read_text())["created"] == "tuesday"  # the run's facts live beside it


def test_resume_skips_a_damaged_latest_checkpoint(tmp_path, tiny_backbone, caplog):
    from oodbench.methods.clipn.checkpoint import resume_point

    clipn = trained_like(tiny_backbone.model)
    meta = checkpoint_meta(clipn, tiny_backbone.identity)
    for step in (2, 4):
        write_checkpoint(tmp_path, step, clipn, meta, {"step": step})
    weights = tmp_path / "checkpoints" / "step-00000004" / "clipn.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # a flipped bit in the last tensor: still a readable file
    weights.write_bytes(bytes(data))
    found = resume_point(tmp_path)
    assert found.folder.name == "step-00000002" and found.state["step"] == 2
    assert "step-00000004" in caplog.text and "damaged" in caplog.text
    (tmp_path / "checkpoints" / "step-00000002" / "state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="Every checkpoint .* is damaged"):
        resume_point(tmp_path)
