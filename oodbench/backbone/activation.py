"""QuickGELU or GELU: which activation a set of weights was trained with.

OpenAI's CLIP weights were trained with QuickGELU (``x * sigmoid(1.702 x)``); open_clip's plain model
configs build GELU. open_clip knows this for its pretrained tags but not for a weights *file*, so for
files it is decided here.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def file_needs_quick_gelu(model_name: str, path: Path, sha: str) -> bool:
    """QuickGELU for a weights *file*: open_clip checks this only for tags, so we do it here.

    True when the file's sha256 is that of a known QuickGELU release (OpenAI's URLs carry it), or when
    the file is an OpenAI-format checkpoint (a TorchScript archive).
    """
    if model_name.endswith("-quickgelu"):
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
