"""Check a toyworld CLIP checkpoint through the real loading path: generated PNG folders -> Backbone.

    .venv/bin/python toyworld/scripts/evaluate_toyclip.py [--weights PATH] [--mini]

Prints zero-shot ID accuracy with the prompt "a photo of a {}" and MCM AUROC (T = 1, ID positive)
against toyworld-near and toyworld-far. ``oodbench run --id toyworld`` gives the full leaderboard; this
is the trainer's own check, independent of the runner.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

import oodbench.toyworld  # noqa: F401  (registers the data sets and the bundled weights)
from oodbench.backbone import Backbone, BackboneSpec
from oodbench.data.base import open_dataset
from oodbench.data.spec import DataContext
from oodbench.progress import setup_logging

log = logging.getLogger("evaluate_toyclip")


def evaluate(weights: str, mini: bool = False, model: str = "toyclip", data_root: str | None = None) -> dict:
    backbone = Backbone.load(BackboneSpec(model, weights, device="cpu"))
    ctx = DataContext(data_root=data_root)
    prefix = "toyworld-mini" if mini else "toyworld"
    feats = {}
    id_set = None
    for suffix in ("", "-near", "-far"):
        ds = open_dataset(prefix + suffix, ctx).with_transform(backbone.preprocess)
        id_set = id_set or ds
        feats[suffix] = torch.from_numpy(backbone.encode_images(ds, batch_size=256))
    text = backbone.class_text_features(id_set.class_names, ["a photo of a {}"])
    x = feats[""]
    out = {"id_accuracy": float(((x @ text.T).argmax(1).numpy() == id_set.labels).mean())}
    s_id = torch.softmax(x @ text.T, 1).amax(1).numpy()
    for suffix in ("-near", "-far"):
        s_ood = torch.softmax(feats[suffix] @ text.T, 1).amax(1).numpy()
        y = np.r_[np.ones(len(s_id)), np.zeros(len(s_ood))]
        out[f"mcm_auroc{suffix.replace('-', '_')}"] = float(roc_auc_score(y, np.r_[s_id, s_ood]))
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--weights", default="toyworld", help="checkpoint file or bundled name")
    p.add_argument("--model", default="toyclip")
    p.add_argument("--mini", action="store_true", help="use the small toyworld-mini splits")
    p.add_argument("--data-root", default=None)
    args = p.parse_args(argv)
    setup_logging()
    torch.set_num_threads(1)
    result = evaluate(args.weights, args.mini, args.model, args.data_root)
    print(json.dumps({k: round(v, 4) for k, v in result.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
