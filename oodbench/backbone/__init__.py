"""The backbone: an open_clip model named by ``--model`` plus ``--pretrained`` (tag, file, bundled name, ``none``).

- :mod:`~oodbench.backbone.spec`: :class:`BackboneSpec`, what the user asked for (no torch);
- :mod:`~oodbench.backbone.model`: :class:`Backbone`, loading and encoding (images in batches, texts as
  short sequences, cached), always L2-normalised float32 features on the CPU;
- :mod:`~oodbench.backbone.activation`: QuickGELU or GELU for a set of weights;
- :mod:`~oodbench.backbone.weights`: strict weights-file loading and oodbench's open_clip model configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from oodbench.backbone.spec import INTERPOLATIONS, PRECISIONS, BackboneSpec, valid_resize

if TYPE_CHECKING:
    from oodbench.backbone.model import Backbone

__all__ = ["INTERPOLATIONS", "PRECISIONS", "Backbone", "BackboneSpec", "valid_resize"]


def __getattr__(name: str) -> Any:
    """``Backbone`` on first use: it imports torch and open_clip, which the spec (what a protocol or a
    suite names) does not need."""
    if name == "Backbone":
        from oodbench.backbone.model import Backbone

        return Backbone
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
