"""The one exception family for what a *user* did wrong.

The CLI turns an :class:`OodbenchError` into a short message and exit code 2, with no traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OodbenchError(Exception):
    """Base class for user errors (bad names, missing data, incompatible files, ...).

    The message is one paragraph: what was wrong, what was looked at, and what to do.
    It takes a single string so that it survives being re-raised from DataLoader workers.
    """


class UnknownNameError(OodbenchError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DataError(OodbenchError):
    """A data set folder is missing, empty or malformed, or an image cannot be decoded."""


class CheckpointError(OodbenchError):
    """A weights file does not exist or does not fit the model it is loaded into."""


class TrainingError(OodbenchError):
    """Training cannot go on (bad data, non-finite loss, ...)."""


def unknown_name_message(kind: str, name: str, known: Iterable[str], hint: str = "") -> str:
    """Build the message for an unknown ``name`` of ``kind``, with close matches first."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    msg = f"Unknown {kind} {name!r}."
    if close:
        msg += f" Did you mean {', '.join(repr(c) for c in close)}?"
    msg += f" Known {kind}s: {', '.join(known) if known else '(none registered)'}."
    if hint:
        msg += f" {hint}"
    return msg
