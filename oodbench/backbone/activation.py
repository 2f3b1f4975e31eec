"""QuickGELU or GELU: which activation a set of weights was trained with.

OpenAI's CLIP weights (and a few others: DFN, MetaCLIP, OpenAI-recipe YFCC/CC12M/LAION-400M runs) were
trained with QuickGELU (``x * sigmoid(1.702 x)``); open_clip's plain model configs (``ViT-B-16``, ``RN50``)
build GELU. open_clip 3.x knows which of its pretrained tags need QuickGELU (``quick_gelu`` in the tag's
pretrained config) but only *warns* when the model config disagrees, and builds GELU; for a weights
*file* it knows nothing. Both are decided here, and the loader forces the activation the weights need.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def tag_needs_quick_gelu(model_name: str, tag: str) -> bool:
    """True when open_clip's pretrained config for ``model_name``/``tag`` says the weights use QuickGELU
    (every ``openai`` tag, ViT and ResNet; ``dfn2b``, ``dfn5b``, ``metaclip_*``, ``yfcc15m``, ``cc12m``,
    ``laion400m_e31/e32`` on some models); False for the others (e.g. ``laion2b_s34b_b88k``)."""
    import open_clip

    return bool(open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False))


def config_uses_quick_gelu(model_name: str) -> bool:
    """True when the model config itself builds QuickGELU (the ``*-quickgelu`` configs, and a few others
    such as ``roberta-ViT-B-32`` whose names do not say so)."""
    import open_clip

    return bool((open_clip.get_model_config(model_name) or {}).get("quick_gelu", False))


def file_needs_quick_gelu(model_name: str, path: Path, sha: str) -> bool:
    """QuickGELU for a weights *file*: open_clip checks this only for tags, so we do it here.

    True when the file's sha256 is that of a known QuickGELU release (OpenAI's URLs carry it), or when
    the file is an OpenAI-format checkpoint (a TorchScript archive).
    """
    if config_uses_quick_gelu(model_name):
        return False  # the config already uses it
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    for name, tag in open_clip.list_pretrained():
        cfg = get_pretrained_cfg(name, tag)
        if cfg.get("quick_gelu") and sha in (cfg.get("url") or ""):
            log.info("%s is the known QuickGELU release %s/%s", path.name, name, tag)
            return True
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
        if head[:2] == b"PK":  # zip container: TorchScript archives hold a 'constants.pkl'
            import zipfile

            with zipfile.ZipFile(path) as zf:
                if any(n.endswith("constants.pkl") for n in zf.namelist()):
                    log.info("%s is a TorchScript (OpenAI) archive: using QuickGELU", path.name)
                    return True
    except Exception:  # noqa: BLE001 - a detection helper must not fail the load
        return False
    return False
