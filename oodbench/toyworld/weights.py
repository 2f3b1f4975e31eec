"""toyworld's tiny CLIP, shipped in the package: ``--model toyclip --pretrained toyworld``.

The weights (``oodbench/assets/toyclip.safetensors``) are trained by
``benchmarks/toyworld/train_toyclip.py``; ``benchmarks/toyworld/README.md`` gives the command and numbers.
"""

from __future__ import annotations

from pathlib import Path

from oodbench.backbone import BUNDLED_WEIGHTS
from oodbench.errors import CheckpointError

MODEL_NAME = "toyclip"
BUNDLED_NAME = "toyworld"
WEIGHTS_FILE = Path(__file__).resolve().parent.parent / "assets" / "toyclip.safetensors"


def toyclip_weights() -> tuple[str, Path]:
    """(open_clip model name, path) of the bundled tiny CLIP; fails clearly when the file is missing."""
    if not WEIGHTS_FILE.is_file():
        raise CheckpointError(
            f"The bundled toyworld CLIP weights {WEIGHTS_FILE} are missing from this installation. "
            "Reinstall oodbench, or train them with benchmarks/toyworld/train_toyclip.py --output "
            f"{WEIGHTS_FILE}.")
    return MODEL_NAME, WEIGHTS_FILE


if BUNDLED_NAME not in BUNDLED_WEIGHTS:
    BUNDLED_WEIGHTS.register(BUNDLED_NAME, toyclip_weights)
