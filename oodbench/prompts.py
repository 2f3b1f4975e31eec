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


def check_template(template: str, where: str) -> None:
    """A prompt template must hold exactly one ``{}`` (where the name goes) and no other format field.

    ``{{`` and ``}}`` stand for literal braces. Raises an :class:`OodbenchError` naming ``where``.
    """
    import string

    from oodbench.errors import OodbenchError

    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        raise OodbenchError(f"The template {template!r} in {where} is not a valid template ({exc}). Write "
                            "'{}' where the class name goes, and '{{' / '}}' for literal braces.") from None
    if len(fields) != 1 or fields[0] != ("", "", None):
        shown = ", ".join("{" + (n or "") + (f"!{c}" if c else "") + (f":{s}" if s else "") + "}"
                          for n, s, c in fields) or "none"
        raise OodbenchError(f"The template {template!r} in {where} needs exactly one '{{}}' placeholder where "
                            f"the class name goes, and no other field (found: {shown}). Write '{{{{' / '}}}}' for "
                            "literal braces.")
