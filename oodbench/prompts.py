"""Prompts, in one place: filling a template with a class name or word, and matching names to words."""

from __future__ import annotations

from collections.abc import Sequence


def fill_template(template: str, name: str) -> str:
    """``template`` with ``name`` in its ``{}``, or appended after a space when it has no ``{}``.

    >>> fill_template("a photo of a {}.", "dog"), fill_template("a photo of a", "dog")
    ('a photo of a dog.', 'a photo of a dog')
    """
    return template.format(name) if "{" in template else f"{template} {name}"


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Class-major prompts: every template for the first class, then for the second, ..."""
    return [fill_template(t, c) for c in class_names for t in templates]


def normalise_name(name: str) -> str:
    """Lower case, underscores as spaces, single spaces: how candidate words are matched to class names."""
    return " ".join(name.replace("_", " ").lower().split())
