"""The loaded backbone: an open_clip model with its preprocessing, tokenizer and identity.

It encodes images in batches (progress bar) and texts (short sequences, cached), always returning
L2-normalised float32 features on the CPU. Weights stay fp32; ``bf16``/``fp16`` run under autocast.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oodbench.backbone.activation import config_uses_quick_gelu, file_needs_quick_gelu, tag_needs_quick_gelu
from oodbench.backbone.patches import encode_image_with_patches, patch_count
from oodbench.backbone.spec import INTERPOLATIONS, PRECISIONS, BackboneSpec, valid_resize
from oodbench.backbone.weights import load_weights_file, register_model_configs
from oodbench.bundled import bundled
from oodbench.devices import resolve_device
from oodbench.distributed import gather_rows, world
from oodbench.errors import DataError, OodbenchError, unknown_name_message
from oodbench.hashing import sha256_file, sha256_json, sha256_lines
from oodbench.progress import progress_bar
from oodbench.prompts import class_prompts
from oodbench.text import TextTower, encode_tokens

if TYPE_CHECKING:
    from oodbench.features import FeatureStore

log = logging.getLogger(__name__)


@dataclass
class Backbone:
    """A loaded open_clip model with its preprocessing and tokenizer."""

    spec: BackboneSpec
    model: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    tokenizer: Callable[..., torch.Tensor]
    device: torch.device
    identity: dict[str, Any]
    store: FeatureStore | None = None
    _text_tower: TextTower | None = field(default=None, repr=False)

    # ----------------------------------------------------------------------------- loading
    @classmethod
    def load(cls, spec: BackboneSpec, cache_dir: Path | None = None) -> Backbone:
        import open_clip

        register_model_configs()
        if spec.precision not in PRECISIONS:
            raise OodbenchError(f"Unknown precision {spec.precision!r}. Choose one of: {', '.join(PRECISIONS)}.")
        device = resolve_device(spec.device)
        if spec.precision == "fp16" and device.type == "cpu":
            raise OodbenchError("Precision fp16 needs a GPU (autocast fp16 is not supported on the CPU). "
                                "Use --precision bf16 or fp32 on the CPU.")
        known = open_clip.list_models()
        model_name = spec.model
        pretrained = spec.pretrained or "none"
        weights = bundled("clip")
        if pretrained in weights:
            entry = weights.get(pretrained)
            if model_name != entry.model:
                raise OodbenchError(f"Bundled weights {pretrained!r} are for --model {entry.model}, "
                                    f"not {model_name!r}.")
            pretrained_path: Path | None = entry.path()
            tag = None
        elif pretrained.lower() == "none":
            pretrained_path, tag = None, None
        elif Path(pretrained).expanduser().is_file():
            pretrained_path, tag = Path(pretrained).expanduser(), None
        else:
            pretrained_path, tag = None, pretrained
        if model_name not in known:
            raise OodbenchError(unknown_name_message(
                "model", model_name, known,
                hint="Names are open_clip model configs (open_clip.list_models()) or oodbench's own "
                     "(oodbench/model_configs)."))
        if tag is not None:
            tags = [t for m, t in open_clip.list_pretrained() if m == model_name]
            if tag not in tags:
                looks_like_path = any(c in tag for c in "/\\.") or tag.startswith("~")
                raise OodbenchError(
                    f"--pretrained {tag!r} is neither an existing file nor a known tag for {model_name}. "
                    + ("(No file exists at that path.) " if looks_like_path else "")
                    + f"Tags for {model_name}: {', '.join(tags) if tags else '(none)'}; or pass a checkpoint "
                    f"file, a bundled name ({', '.join(weights.names()) or 'none'}) or 'none'."
                )

        quick_gelu = spec.quick_gelu
        identity: dict[str, Any] = {"model": model_name, "precision": spec.precision}
        if pretrained_path is not None:
            sha = sha256_file(pretrained_path, cache_dir)
            identity["checkpoint_sha256"] = sha
            identity["checkpoint"] = pretrained_path.name
            if pretrained in weights:
                identity["bundled"] = pretrained
            if quick_gelu is None:
                quick_gelu = file_needs_quick_gelu(model_name, pretrained_path, sha)
        else:
            identity["pretrained"] = tag or "none"
            if tag is None:
                identity["init_seed"] = spec.seed
        if tag is not None:
            needed = tag_needs_quick_gelu(model_name, tag)
            if quick_gelu is None:
                quick_gelu = needed
            elif quick_gelu != needed:
                log.warning("%s/%s was trained with %s but --%squick-gelu builds %s: its features will not "
                            "be the published model's.", model_name, tag, "QuickGELU" if needed else "GELU",
                            "" if quick_gelu else "no-", "QuickGELU" if quick_gelu else "GELU")
        if quick_gelu is False and config_uses_quick_gelu(model_name):
            raise OodbenchError(f"--no-quick-gelu cannot turn QuickGELU off for {model_name}: its open_clip "
                                "config builds QuickGELU. Use the config without it (e.g. drop '-quickgelu').")
        # the activation actually built: part of the identity, hence of every cache key
        identity["quick_gelu"] = bool(quick_gelu) or config_uses_quick_gelu(model_name)

        kwargs: dict[str, Any] = {}
        if quick_gelu:
            kwargs["force_quick_gelu"] = True
        if spec.interpolation is not None:
            if spec.interpolation not in INTERPOLATIONS:
                raise OodbenchError(f"Unknown interpolation {spec.interpolation!r}; choose one of "
                                    f"{', '.join(INTERPOLATIONS)}.")
            kwargs["image_interpolation"] = spec.interpolation
        if tag is None and pretrained_path is None:
            torch.manual_seed(spec.seed)  # "none": random weights, reproducible per seed
        quiet = _DropMessage("No pretrained weights loaded")
        logging.getLogger().addFilter(quiet)  # open_clip warns about random weights; we load them right after
        try:
            # load_weights=False: open_clip resolves (downloads) a tag and sets its preprocessing, but the
            # file itself is read by oodbench.safeload, never by open_clip's load_checkpoint.
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=tag, device="cpu", load_weights=False, **kwargs)
            if tag is not None:  # the file open_clip resolved for the tag (already downloaded: a cache hit)
                from open_clip import factory

                pretrained_path = Path(factory.download_pretrained(factory.get_pretrained_cfg(model_name, tag)))
        except RuntimeError as exc:  # tag download failed (offline) and friends
            raise OodbenchError(
                f"Could not load pretrained weights {tag!r} for {model_name}: {exc}. Offline, download "
                "the weights elsewhere and pass the file with --pretrained PATH.") from None
        finally:
            logging.getLogger().removeFilter(quiet)
        if pretrained_path is not None:
            load_weights_file(model, pretrained_path)
        model.eval().requires_grad_(False).to(device)
        if spec.resize is not None:
            preprocess = with_resize(preprocess, spec.resize)
        identity["preprocess"] = _describe_transform(preprocess)
        tokenizer = open_clip.get_tokenizer(model_name)
        return cls(spec=spec, model=model, preprocess=preprocess, tokenizer=tokenizer, device=device,
                   identity=identity)

    @property
    def key(self) -> str:
        """Short, stable hash of :attr:`identity` (cache keys, file names)."""
        return sha256_json(self.identity, 16)

    @property
    def slug(self) -> str:
        """Human-readable name for result paths: ``<model>_<tag, bundled name or checkpoint stem>``."""
        src = (self.identity.get("pretrained") or self.identity.get("bundled")
               or Path(self.identity.get("checkpoint", "file")).stem)
        return f"{self.identity['model']}_{src}".replace("/", "-")

    @property
    def text_tower(self) -> TextTower | None:
        if self._text_tower is None:
            self._text_tower = TextTower.of(self.model)
        return self._text_tower

    @property
    def embed_dim(self) -> int:
        dim = getattr(self.model.visual, "output_dim", None)
        return int(dim) if dim else int(self.encode_texts(["a"], use_cache=False).shape[1])

    def autocast(self) -> Any:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.spec.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    # ----------------------------------------------------------------------------- images
    @property
    def patch_count(self) -> int:
        """P, patch features per image (GL-MCM's local features); raises PatchFeaturesUnsupported if none."""
        return patch_count(self.model)

    @torch.no_grad()
    def encode_images(self, dataset: torch.utils.data.Dataset, batch_size: int = 128, workers: int = 0,
                      desc: str = "encoding images", patches: np.ndarray | bool = False) -> np.ndarray:
        """[N, D] float32 L2-normalised features of ``dataset`` (items: ``(image, label, error)``).

        ``patches``: ``False`` (global features only, the usual pass); or an [N, P, D] array, typically a
        writable memory map of a cache entry (:attr:`patch_count` gives P), into which the same pass writes
        the L2-normalised patch features (:mod:`oodbench.backbone.patches`), row i for item i, in the array's
        dtype (fp16 in the cache); or ``True`` on the ranks other than 0 under ``torchrun``, which compute
        their share of the patch features without keeping the result. Under ``torchrun`` every process
        encodes a strided share and all get the whole result; patch features are then gathered in memory
        at the end (N x P x D fp16 on each device) and written by rank 0.

        An item whose ``error`` is non-empty (a file that cannot be decoded) stops the run with a
        :class:`DataError` naming the file(s); nothing is returned, so nothing half-done is cached.
        """
        rank, size = world()
        total = len(dataset)
        with_patches = patches is not False
        out = patches if isinstance(patches, np.ndarray) else None
        if out is not None and (out.ndim != 3 or out.shape[0] != total):
            raise ValueError(f"patch array of shape {out.shape} for {total} images; expected [N, P, D]")
        shard = dataset if size == 1 else torch.utils.data.Subset(dataset, range(rank, total, size))
        loader = torch.utils.data.DataLoader(
            shard, batch_size=batch_size, shuffle=False, num_workers=workers,
            pin_memory=self.device.type == "cuda", persistent_workers=False)
        chunks: list[torch.Tensor] = []
        patch_chunks: list[torch.Tensor] = []
        row = 0
        with progress_bar(disable=rank != 0) as bar:
            task = bar.add_task(desc if size == 1 else f"{desc} (rank 0 of {size})", total=len(shard))
            for images, _labels, errors in loader:
                bad = [e for e in errors if e]
                if bad:
                    raise DataError(
                        f"{len(bad)} image(s) could not be read, e.g. {bad[0]}. Remove or replace the "
                        "file(s) and run again; nothing was cached for this data set.")
                batch = images.to(self.device, non_blocking=True)
                with self.autocast():
                    if with_patches:
                        feats, patch = encode_image_with_patches(self.model, batch)
                    else:
                        feats = self.model.encode_image(batch)
                chunks.append(F.normalize(feats.float(), dim=-1))
                if with_patches and size == 1 and out is not None:
                    patch = patch.half() if out.dtype == np.float16 else patch  # halves the copy off the GPU
                    out[row:row + len(images)] = patch.cpu().numpy()
                elif with_patches:
                    patch_chunks.append(patch.to(torch.float16))
                row += len(images)
                bar.advance(task, len(images))
        if not chunks and size == 1:
            raise DataError(f"No images to encode ({desc}).")
        local = torch.cat(chunks) if chunks else torch.empty(0, self.embed_dim, device=self.device)
        if with_patches and size > 1:
            shape = (0, self.patch_count, self.embed_dim)
            mine = torch.cat(patch_chunks) if patch_chunks else torch.empty(shape, dtype=torch.float16,
                                                                            device=self.device)
            gathered = gather_rows(mine, total)
            if out is not None:
                out[:] = gathered.cpu().numpy().astype(out.dtype, copy=False)
        # Under torchrun each process encodes every size-th image; the rows are put back in order.
        return gather_rows(local, total).cpu().numpy().astype(np.float32, copy=False)

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the image tower's input (what its preprocessing crops to)."""
        size = getattr(self.model.visual, "image_size", None)
        if size is None:
            size = (getattr(self.model.visual, "preprocess_cfg", None) or {}).get("size")
        if size is None:
            raise OodbenchError(f"Cannot tell the input size of {self.spec.model}'s image tower.")
        return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @torch.no_grad()
    def encode_image_tensors(self, images: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
        """[n, D] float32 L2-normalised features (CPU) of ``images`` [n, 3, H, W], fed to the tower as they
        are: no resizing and no mean/std normalisation (for synthetic inputs such as TANL's noise images;
        data sets go through :meth:`encode_images` and the preprocessing)."""
        out = []
        for batch in images.split(batch_size):
            with self.autocast():
                feats = self.model.encode_image(batch.to(self.device, torch.float32))
            out.append(F.normalize(feats.float(), dim=-1).cpu())
        return torch.cat(out) if out else torch.empty(0, self.embed_dim)

    # ----------------------------------------------------------------------------- texts
    @torch.no_grad()
    def encode_texts(self, prompts: Sequence[str], batch_size: int = 512, use_cache: bool = True,
                     desc: str | None = None, normalize: bool = True) -> torch.Tensor:
        """[n, D] float32 features of ``prompts`` (CPU), L2-normalised, cached per backbone.

        ``normalize=False`` returns the text tower's raw output instead (for methods that average
        unnormalised embeddings, such as CSP); it is cached under its own key.
        Prompts are sorted by token length and each batch runs only up to its longest prompt.
        """
        prompts = list(prompts)
        if not prompts:
            raise OodbenchError("No prompts to encode.")
        if use_cache and self.store is not None and len(prompts) > 1:
            key = {"backbone": self.identity, "prompts_sha256": sha256_lines(prompts), "n": len(prompts)}
            if not normalize:
                key["normalize"] = False
            arrays = self.store.get_or_compute(
                "text", key,
                lambda: {"features": self._encode_texts(prompts, batch_size, desc, normalize).numpy()},
                meta={"first_prompts": prompts[:3]})
            return torch.from_numpy(np.array(arrays["features"], dtype=np.float32))
        return self._encode_texts(prompts, batch_size, desc, normalize)

    def _encode_texts(self, prompts: list[str], batch_size: int, desc: str | None,
                      normalize: bool = True) -> torch.Tensor:
        tokens = self.tokenizer(prompts)
        tower = self.text_tower
        lengths = tokens.argmax(dim=-1) if tower is not None else torch.zeros(len(prompts))
        order = torch.argsort(lengths, stable=True)
        out = torch.empty(0)
        show = desc is not None or len(prompts) > 4 * batch_size
        with progress_bar(disable=not show) as bar:
            task = bar.add_task(desc or "encoding prompts", total=len(prompts))
            for start in range(0, len(prompts), batch_size):
                idx = order[start:start + batch_size]
                batch = tokens[idx].to(self.device)
                with self.autocast():
                    if tower is not None:
                        feats = encode_tokens(tower, batch, normalize=normalize)
                    else:
                        feats = self.model.encode_text(batch)
                feats = F.normalize(feats.float(), dim=-1).cpu() if normalize else feats.float().cpu()
                if out.numel() == 0:
                    out = torch.empty(len(prompts), feats.shape[1])
                out[idx] = feats
                bar.advance(task, len(idx))
        return out

    def class_text_features(self, class_names: Sequence[str], templates: Sequence[str],
                            desc: str | None = None, normalize_prompts: bool = True,
                            use_cache: bool = True) -> torch.Tensor:
        """[C, D] prompt-ensembled class embeddings, L2-normalised.

        ``normalize_prompts=True`` (CLIP's rule, the default): normalise each template's embedding, average,
        normalise again. ``False``: average the raw embeddings, then normalise (CSP's rule); the two differ
        unless every prompt's embedding has the same norm. ``use_cache=False`` skips the text cache (for
        very long lists whose result the caller caches itself).
        """
        templates = list(templates)
        if not templates:
            raise OodbenchError("No prompt templates given.")
        prompts = class_prompts(class_names, templates)
        feats = self.encode_texts(prompts, desc=desc, normalize=normalize_prompts, use_cache=use_cache)
        return F.normalize(feats.view(len(class_names), len(templates), -1).mean(dim=1), dim=-1)

    @property
    def logit_scale(self) -> float:
        scale = getattr(self.model, "logit_scale", None)
        return float(scale.exp().item()) if scale is not None else 100.0


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def with_resize(preprocess: Any, size: int) -> Any:
    """``preprocess`` with its resize of the shorter side set to ``size`` (same interpolation); the centre
    crop after it keeps the model's input size. ``size`` below the crop would pad: refused."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    resizes = [i for i, t in enumerate(steps) if isinstance(t, T.Resize)]
    crops = [t for t in steps if isinstance(t, T.CenterCrop)]
    if len(resizes) != 1 or len(crops) != 1:
        raise OodbenchError(f"--resize needs a resize-then-centre-crop preprocessing; this model's is "
                            f"{preprocess}.")
    crop = max(crops[0].size)
    if not valid_resize(size) or size < crop:
        raise OodbenchError(f"--resize {size!r}: the shorter side before the {crop} x {crop} centre crop "
                            f"must be a whole number of pixels, at least {crop} (OpenOOD's is 256).")
    old = steps[resizes[0]]
    steps[resizes[0]] = T.Resize(size, interpolation=old.interpolation, max_size=old.max_size,
                                 antialias=old.antialias)
    return T.Compose(steps)


def _describe_transform(t: Any) -> str:
    return " ".join(repr(t).split())
