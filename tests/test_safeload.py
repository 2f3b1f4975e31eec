"""Safe loading: no file oodbench reads can run code, whatever the environment says; OpenAI's TorchScript
archives still load (their tensors, read without torch.jit)."""

from __future__ import annotations

import builtins
import pickle
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from testkit import TINY

from oodbench.backbone import Backbone, BackboneSpec
from oodbench.backbone.weights import load_weights_file
from oodbench.errors import CheckpointError
from oodbench.safeload import (
    UnsafeFileError,
    file_kind,
    read_state_dict,
    torch_load,
    weights_only_enforced,
)


class _Trigger:
    """A tensor whose state makes torch's weights-only unpickler raise TypeError (open_clip then retries)."""

    def __reduce__(self):
        return (torch.Tensor, (), (False, None, None))


class _Payload:
    """What an attacker runs; here it only creates a file (the marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": [_Trigger(), _Payload(marker)]}, path)
    return path


def test_the_crafted_file_is_a_real_attack_on_open_clips_loader(tmp_path, monkeypatch):
    """The threat: open_clip's load_checkpoint retries a failed weights_only load with a plain torch.load,
    which TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns into plain unpickling: the payload runs."""
    from open_clip.factory import load_state_dict

    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.warns(UserWarning), pytest.raises(Exception):  # noqa: B017 - it fails, after the payload ran
        load_state_dict(str(evil))
    assert marker.exists()


def test_oodbench_refuses_the_crafted_file_even_when_torch_is_told_to_unpickle_anything(
        tmp_path, monkeypatch, tiny_backbone):
    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeFileError, match=r"evil\.pt safely \(TypeError.*never runs code"):
        load_weights_file(tiny_backbone.model, evil)
    with pytest.raises(CheckpointError, match="safely"):  # the CLIPN reader and the training state too
        from oodbench.methods.clipn.checkpoint import read_checkpoint

        read_checkpoint(evil)
    assert not marker.exists()


def test_the_cli_answers_with_exit_code_2(tmp_path, monkeypatch, folder_benchmark):
    from typer.testing import CliRunner

    from oodbench.cli import app

    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "evil.pt", marker)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    res = CliRunner().invoke(app, ["run", "-m", "mcm", "--id", f"folder:{folder_benchmark['id']}",
                                   "--ood", f"folder:{folder_benchmark['ood_a']}", "--model", TINY,
                                   "--pretrained", str(evil), "--workers", "0", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "never runs code" in " ".join(res.output.split()) and not marker.exists()


def test_a_torch_that_ignores_weights_only_is_not_used(tmp_path, monkeypatch):
    path = tmp_path / "plain.pt"
    torch.save({"w": torch.ones(2)}, path)
    assert weights_only_enforced()
    real = torch.load

    def careless(f, *args, **kwargs):
        kwargs["weights_only"] = False
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", careless)
    assert not weights_only_enforced()
    with pytest.raises(UnsafeFileError, match="does not honour weights_only=True"):
        torch_load(path)


def save_traced(model: torch.nn.Module, path: Path) -> None:
    """What OpenAI released: a traced model in a TorchScript archive (torch.jit is deprecated now)."""
    image = torch.randn(1, 3, 32, 32)
    text = torch.randint(0, 100, (1, 77))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(model, (image, text), check_trace=False), str(path))


def test_a_torchscript_archive_loads_its_tensors_without_torch_jit(tmp_path, monkeypatch, tiny_backbone):
    path = tmp_path / "ViT-tiny.pt"
    save_traced(tiny_backbone.model, path)
    assert file_kind(path) == "torchscript"

    def no_jit(*args, **kwargs):
        raise AssertionError("torch.jit.load runs the archive's code")

    monkeypatch.setattr(torch.jit, "load", no_jit)
    state = read_state_dict(path)
    want = tiny_backbone.model.state_dict()
    assert set(state) == set(want) | {"attn_mask"}  # a traced model also stores its non-persistent buffer
    loaded = Backbone.load(BackboneSpec(TINY, str(path), quick_gelu=False))
    got = loaded.model.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert loaded.identity["checkpoint"] == "ViT-tiny.pt"


def torchscript_like(path: Path, data_pkl: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", data_pkl)
        zf.writestr("archive/constants.pkl", pickle.dumps(()))
        zf.writestr("archive/version", "3\n")
    return path


def test_a_torchscript_archive_that_names_code_is_refused(tmp_path, tiny_backbone):
    marker = tmp_path / "pwned"
    path = torchscript_like(tmp_path / "evil_ts.pt", pickle.dumps(_Payload(marker), protocol=2))
    assert file_kind(path) == "torchscript"
    with pytest.raises(UnsafeFileError, match=r"names io\.open, which a tensors-only reader does not rebuild"):
        load_weights_file(tiny_backbone.model, path)
    assert not marker.exists()


def test_other_files_are_refused_with_the_way_out(tmp_path, tiny_backbone):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(UnsafeFileError, match="convert it once"):
        load_weights_file(tiny_backbone.model, junk)
    numbers = tmp_path / "numbers.pt"
    torch.save({"a": 1}, numbers)
    with pytest.raises(CheckpointError, match="not tensors"):
        read_state_dict(numbers)


def test_a_file_downloaded_for_a_tag_goes_through_the_safe_loader_too(tmp_path, monkeypatch):
    """Offline: open_clip's download returns a crafted file and its model class builds the tiny model."""
    import json
    from importlib import resources

    import open_clip.factory as factory
    from open_clip.model import CLIP

    tiny = json.loads(resources.files("oodbench").joinpath("model_configs/oodbench-tiny.json").read_text())
    marker = tmp_path / "pwned"
    evil = crafted_checkpoint(tmp_path / "open_clip_pytorch_model.bin", marker)

    def never(*args, **kwargs):
        raise AssertionError("open_clip's load_checkpoint must not read the file")

    monkeypatch.setattr(factory, "download_pretrained", lambda *a, **k: str(evil))
    monkeypatch.setattr(factory, "load_checkpoint", never)
    monkeypatch.setattr(factory, "CLIP", lambda **cfg: CLIP(embed_dim=tiny["embed_dim"], vision_cfg=tiny["vision_cfg"],
                                                             text_cfg=tiny["text_cfg"]))
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(UnsafeFileError, match="open_clip_pytorch_model.bin safely"):
            Backbone.load(BackboneSpec("ViT-B-16", "laion2b_s34b_b88k", device="cpu"))
    assert not marker.exists()
