"""EOE: envisioning outlier exposure (Cao et al., ICML 2024). Higher = more ID.

A language model is asked for labels of things that look like, but are not, the ID classes (the authors'
released lists live in ``Aboriginer/EOE``, ``envisioned_classes/``; oodbench calls no language model).
With the cosines ``cos(x, t_c)`` to the C ID prompts and ``cos(x, u_j)`` to the J outlier-label prompts
(``"a photo of a {}"`` for both),

    p = softmax([cos(x, t_1..t_C) || cos(x, u_1..u_J)] / T),    S = max_{c <= C} p_c - beta * max_j p_{C+j}

with T = 1 on raw cosines and beta = 0.25 (reference ``Aboriginer/EOE`` @ 20fa95e: ``eval_ood_detection.py``
L72 ``--beta`` 0.25, L81 ``--T`` 1; ``utils/detection_util.py`` L138-147; ``eval.sh`` passes ``--score EOE
--score_ablation EOE --beta 0.25``; the argparse default of ``--score_ablation``, ``MAX``, is another score).
At T = 1 every p is close to 1/(C + J) and the scores are ~1e-3; the ranking still separates, and T = 1 is
what the paper's numbers use.

Label files (:func:`read_outlier_labels`): the reference's JSON, ``{"far": [labels]}`` for the far and
fine-grained tasks, ``{id_class: [labels]}`` for the near task (any object of lists: the values are
flattened in file order), or a text file with one label per line. Cleaning (:func:`clean_outlier_labels`)
follows ``utils/generate_llm_class.py`` L215-226 and ``utils/detection_util.py`` L131-133, L177-181:
lower-case, drop repeats, drop labels equal to an ID class name, and for the near task drop every label
that shares a word with an ID class name. The optional pre-filter (:func:`pre_filter_mask`) drops labels
too close to an ID prompt; the reference uses 0.85 only for the near task with ImageNet-20 as ID.

Checked against the official code: its ``load_llm_classes`` on all 73 released ImageNet / ImageNet-10 /
ImageNet-20 files gives the same label sets for 72 (the other differs by labels with trailing spaces,
which the reference keeps and oodbench strips); the far_500 gpt-3.5 files ``_0/_1/_2`` hold 539/502/391
entries but 215/261/257 distinct labels. Scores agree with its ``get_ood_scores_clip`` (EOE branch) to
8.5e-10 (far, 215 labels) and 1.8e-8 (near with the 0.85 pre-filter).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from oodbench.bundled import bundled
from oodbench.errors import OodbenchError
from oodbench.hashing import sha256_lines
from oodbench.methods.common import block_rows
from oodbench.params import param
from oodbench.prompts import fill_template
from oodbench.scorer import FitContext, MethodInfo, Scorer, error_of

log = logging.getLogger(__name__)

RELEASED_FILES_REPO = "Aboriginer/EOE"
RELEASED_FILES_DIR = "envisioned_classes"
RELEASED_FILES_URL = "https://github.com/Aboriginer/EOE/tree/main/envisioned_classes"
#: Kind of :func:`oodbench.bundled.bundled` files that name outlier-label files shipped in a package.
BUNDLED_KIND = "eoe-labels"


# ----------------------------------------------------------------------------------------- pure math
def eoe_score(image_features: torch.Tensor, id_text_features: torch.Tensor,
              outlier_text_features: torch.Tensor, temperature: float = 1.0,
              beta: float = 0.25) -> torch.Tensor:
    """EOE's score ``max_{c<=C} p_c - beta max_j p_{C+j}``, p = softmax over [ID || outlier] cosines / T.

    Args:
        image_features: [N, D] L2-normalised image features.
        id_text_features: [C, D] L2-normalised ID class text features.
        outlier_text_features: [J, D] L2-normalised envisioned outlier-label text features (J >= 1).
        temperature: T > 0 on raw cosines (reference: 1).
        beta: weight of the outlier penalty (reference: 0.25).

    Returns:
        [N] float64 scores in (-beta, 1); higher = more ID.
    """
    if not temperature > 0:
        raise OodbenchError(f"EOE's temperature must be positive; got {temperature}.")
    for name, feats in (("ID", id_text_features), ("outlier-label", outlier_text_features)):
        if feats.ndim != 2 or feats.shape[1] != image_features.shape[1]:
            raise ValueError(f"{name} text features {tuple(feats.shape)} do not match image features "
                             f"{tuple(image_features.shape)}")
        if feats.shape[0] == 0:
            raise OodbenchError(f"EOE needs at least one {name} label; none is left.")
    c = id_text_features.shape[0]
    text = torch.cat([id_text_features, outlier_text_features]).to(image_features.device, torch.float64)
    rows = block_rows(text.shape[0])
    out = []
    for start in range(0, image_features.shape[0], rows):
        p = torch.softmax(image_features[start:start + rows].to(torch.float64) @ text.T / temperature, dim=1)
        out.append(p[:, :c].max(dim=1).values - beta * p[:, c:].max(dim=1).values)
    if not out:
        return torch.empty(0, dtype=torch.float64, device=image_features.device)
    return torch.cat(out)


def pre_filter_mask(outlier_text_features: torch.Tensor, id_text_features: torch.Tensor,
                    threshold: float | None = None) -> torch.Tensor:
    """[J] bool, True for the outlier labels to keep: those whose cosine to every ID prompt is <= threshold.

    The reference's ``pre_filter`` (``utils/detection_util.py`` L203-236) uses 0.85 only for the near task
    with ImageNet-20 as ID and 1.0 (keeps everything) otherwise; ``None`` keeps everything.
    """
    keep = torch.ones(outlier_text_features.shape[0], dtype=torch.bool)
    if threshold is None or outlier_text_features.shape[0] == 0:
        return keep
    ids = id_text_features.to(outlier_text_features.device, torch.float64)
    sims = outlier_text_features.to(torch.float64) @ ids.T
    return (sims.max(dim=1).values <= threshold).cpu()


# -------------------------------------------------------------------------------------- label files
def labels_from_json(data: Any, source: str = "the label file") -> list[str]:
    """The labels of a parsed EOE JSON file: an object whose values are lists of strings, flattened in order.

    The far / fine-grained files are ``{"far": [...]}``, the near files ``{id_class: [3 labels], ...}``
    (the keys, ID class names, are not labels). A bare list of strings is accepted too.
    """
    groups = data.values() if isinstance(data, dict) else [data] if isinstance(data, list) else None
    labels: list[str] = []
    for group in groups or ():
        if not isinstance(group, list) or not all(isinstance(x, str) for x in group):
            groups = None
            break
        labels.extend(group)
    if groups is None:
        raise OodbenchError(
            f"{source} is not in EOE's label format: expected a JSON object whose values are lists of "
            'label strings, e.g. {"far": ["waterfall", "desert"]} or {"tench": ["goldfish", "koi", "eel"]}, '
            "or a text file with one label per line.")
    return labels


def read_outlier_labels(path: Path | str) -> list[str]:
    """The raw labels of an EOE label file: JSON (see :func:`labels_from_json`) or one label per line.

    A file whose first non-blank character is ``{`` or ``[`` is read as JSON; otherwise every non-blank
    line is a label (lines starting with ``#`` are comments). Raises :class:`OodbenchError` when the file
    is missing (saying where the released files are), unreadable or empty.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise OodbenchError(missing_labels_message(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OodbenchError(f"Cannot read EOE's label file {path}: {exc}. Give a UTF-8 JSON or text "
                            "file.") from None
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise OodbenchError(f"EOE's label file {path} looks like JSON but does not parse: {exc}. "
                                "Fix the file or give one label per line.") from None
        labels = labels_from_json(data, str(path))
    else:
        labels = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not any(x.strip() for x in labels):
        raise OodbenchError(f"EOE's label file {path} holds no labels. Put one label per line, or use a "
                            "released file (see -p eoe.labels).")
    return labels


def missing_labels_message(path: Path | str | None = None) -> str:
    """The error text when no (or a missing) outlier-label file is given: what EOE needs, where to get it."""
    where = f"The file {path} does not exist. " if path is not None else "No outlier-label file was given. "
    return (
        where + "EOE scores against labels of envisioned outliers that a language model wrote for the ID "
        f"classes; oodbench does not call a language model. The authors released theirs in the GitHub "
        f"repository {RELEASED_FILES_REPO}, folder {RELEASED_FILES_DIR}/ ({RELEASED_FILES_URL}), named "
        f"{RELEASED_FILES_DIR}/<task>_<L>/<dataset>_<llm>_<n>.json, e.g. "
        f"{RELEASED_FILES_DIR}/far_500/ImageNet_gpt-3.5-turbo-16k_0.json for ImageNet-1K far OOD or "
        f"{RELEASED_FILES_DIR}/near_3/ImageNet_gpt-3.5-turbo-16k_0.json for near OOD (then "
        "-p eoe.near=true). "
        "Download one and pass its path with -p eoe.labels=PATH, or write your own: a JSON object of label "
        "lists, or a text file with one label per line.")


def normalise_label(label: str) -> str:
    """Lower case with single spaces (CLIP's tokenizer cleans whitespace the same way)."""
    return " ".join(label.lower().split())


def clean_outlier_labels(labels: Iterable[str], id_class_names: Sequence[str], near: bool = False,
                         overlap_case_sensitive: bool = True) -> list[str]:
    """EOE's label cleaning: normalise, drop repeats and ID class names, and (near task) word overlaps.

    Steps, in the reference's order: every label is lower-cased (whitespace also collapsed, see below);
    repeats are dropped (first seen kept; the reference's ``set`` has no stable order, which its max-based
    score does not depend on); labels equal to a lower-cased ID class name are dropped; with ``near=True``
    every label sharing a whitespace-separated word with any ID class name is dropped.

    Args:
        labels: raw labels, e.g. from :func:`read_outlier_labels`.
        id_class_names: the ID class names as prompted.
        near: apply the near-task overlap removal (reference: only for ``--ood_task near``).
        overlap_case_sensitive: compare the lower-cased labels with the ID names' words as written, as
            the reference does (so "siamese" is not caught by "Siamese cat"); False lower-cases both.

    Departure from the reference: surrounding and repeated whitespace is removed ("paper towels " ==
    "paper towels"); the reference keeps it, so such a label escapes the exact-ID-name check although it
    embeds exactly like the ID prompt.
    """
    id_lower = {normalise_label(n) for n in id_class_names}
    out: list[str] = []
    seen: set[str] = set()
    for raw in labels:
        label = normalise_label(raw)
        if label and label not in seen and label not in id_lower:
            seen.add(label)
            out.append(label)
    if near:
        words = {w if overlap_case_sensitive else w.lower() for n in id_class_names for w in n.split()}
        out = [x for x in out if not any(w in words for w in x.split())]
    return out


def resolve_labels_file(labels: str | None) -> Path:
    """The label file named by ``labels``: a path, or the name of a bundled file (e.g. toyworld's)."""
    if labels is None:
        raise OodbenchError(missing_labels_message())
    path = Path(labels).expanduser()
    if path.is_file():
        return path
    shipped = bundled(BUNDLED_KIND)
    if labels in shipped.names():
        return shipped.get(labels).path()
    raise OodbenchError(missing_labels_message(path))


# ----------------------------------------------------------------------------------------- plumbing
@dataclass
class EOE(Scorer):
    """EOE with the reference defaults: T = 1, beta = 0.25, prompt "a photo of a {}".

    ``labels``: the outlier-label file (JSON as released, or one label per line) or a bundled name
    (``toyworld``); required. ``near``: the near task's word-overlap removal. ``pre_filter``: drop labels
    whose cosine to an ID prompt exceeds it (reference: 0.85 for near OOD with ImageNet-20 as ID only).
    """

    info = MethodInfo(
        paper="Cao et al., Envisioning Outlier Exposure by Large Language Models for Out-of-Distribution "
              "Detection, ICML 2024",
        summary="max ID prob - 0.25 max outlier-label prob, softmax(cos / 1) over [ID || envisioned labels]",
        url="https://github.com/Aboriginer/EOE",
    )
    labels: str | None = None
    temperature: float = param(1.0, gt=0)
    beta: float = param(0.25, ge=0)
    near: bool = False
    overlap_case_sensitive: bool = True
    pre_filter: float | None = param(None, ge=-1, le=1)
    template: str = param("a photo of a {}", template=True)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._fitted: dict[str, Any] = {}

    def unmet(self) -> str | None:
        return error_of(lambda: resolve_labels_file(self.labels))

    def fit(self, ctx: FitContext) -> None:
        path = resolve_labels_file(self.labels)
        raw = read_outlier_labels(path)
        labels = clean_outlier_labels(raw, ctx.class_names, self.near, self.overlap_case_sensitive)
        if not labels:
            raise OodbenchError(f"EOE's label file {path} holds {len(raw)} label(s), but none is left after "
                                "dropping repeats and ID class names" + (" and word overlaps (near=true)"
                                                                         if self.near else "") + ".")
        id_templates = ctx.templates_or([self.template])
        self.id_features = ctx.backbone.class_text_features(ctx.class_names, id_templates)
        outliers = ctx.backbone.encode_texts([fill_template(self.template, x) for x in labels],
                                             desc="encoding EOE outlier labels")
        keep = pre_filter_mask(outliers, self.id_features, self.pre_filter)
        if not keep.any():
            raise OodbenchError(f"EOE's pre_filter={self.pre_filter} drops every outlier label of {path}; "
                                "raise it or leave it unset.")
        self.outlier_features = outliers[keep].contiguous()
        self.outlier_labels = [x for x, k in zip(labels, keep.tolist()) if k]
        self._fitted = {
            # a bundled name, or the file's name (never a local path: results are shared)
            "labels_file": self.labels if self.labels in bundled(BUNDLED_KIND) else path.name,
            "labels_raw": len(raw),
            "labels_used": len(self.outlier_labels),
            "labels_dropped_by_pre_filter": int((~keep).sum()),
            "labels_head": self.outlier_labels[:20],
            "labels_sha256": sha256_lines(self.outlier_labels),
            "id_templates": id_templates,
        }
        log.info("EOE: %d outlier labels from %s (%d raw); first: %s", len(self.outlier_labels), path,
                 len(raw), ", ".join(self.outlier_labels[:5]))

    def score(self, image_features: torch.Tensor) -> torch.Tensor:
        if not hasattr(self, "outlier_features"):
            raise RuntimeError("EOE.score called before fit")
        return eoe_score(image_features, self.id_features, self.outlier_features, self.temperature, self.beta)

    def exports(self, image_features: Mapping[str, torch.Tensor]) -> dict[str, pd.DataFrame]:
        """``labels``: the envisioned outlier labels the score used, in file order after cleaning and the
        pre-filter (``label``), with ``max_id_cosine``, each label's largest cosine to an ID class prompt."""
        if not hasattr(self, "outlier_labels"):
            raise RuntimeError("EOE.exports called before fit")
        closest = (self.outlier_features.double() @ self.id_features.double().T).amax(dim=1)
        return {"labels": pd.DataFrame({"label": self.outlier_labels, "max_id_cosine": closest.tolist()})}

    def predict_classes(self, image_features: torch.Tensor) -> torch.Tensor:
        return (image_features @ self.id_features.to(image_features.device).T).argmax(dim=-1)

    def provenance(self) -> dict[str, Any]:
        return dict(self._fitted)
