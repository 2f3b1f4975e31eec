"""CLIPN's prompt templates (``prompts.txt``): the reference's 128 "yes" lines and its hand-crafted "no" pool,
verbatim, and the clean templates without the reference's reading artefacts. No torch needed."""

from __future__ import annotations

from pathlib import Path

PROMPTS_FILE = Path(__file__).with_name("prompts.txt")


def load_prompt_pairs(path: Path = PROMPTS_FILE, verbatim: bool = True) -> tuple[list[str], list[str]]:
    """The 128 positive templates and the index-aligned hand-crafted "no" pool (``prompts.txt``).

    ``verbatim`` (default): each line exactly as CLIPN's inference reads it, literal quotes and the two
    trailing commas included (``'a bad photo of a {}.'``, ``'a photo of a {}.',``), so the class heads equal
    the reference's. ``verbatim=False``: the clean templates (:func:`clean_template`).
    """
    yes: list[str] = []
    no: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        pos, neg = line.split("\t")
        yes.append(pos if verbatim else clean_template(pos))
        no.append(neg if verbatim else clean_template(neg))
    return yes, no


def clean_template(line: str) -> str:
    """A reference line without its reading artefacts: ``'a photo of a {}.',`` -> ``a photo of a {}.``."""
    return line.rstrip(",").strip("'")
