"""Hashes, in one place: of a list of lines, of a JSON-able value, of a file (memoised)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def sha256_lines(lines: Iterable[str]) -> str:
    """sha256 (hex) of the lines joined by newlines: the identity of a word list, templates, class names."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def sha256_json(value: Any, length: int | None = None) -> str:
    """sha256 (hex) of the canonical JSON of ``value`` (sorted keys; non-JSON values as ``str``)."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest


def sha256_file(path: Path, memo_dir: Path | None = None) -> str:
    """sha256 of a file, memoised by (path, size, modification time) under ``memo_dir`` when given."""
    from oodbench.files import atomic_write_text

    path = Path(path)
    st = path.stat()
    memo_key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = Path(memo_dir) / "sha256-memo.json" if memo_dir else None
    memo: dict[str, str] = {}
    if memo_file and memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except (OSError, ValueError):
            memo = {}
        if memo_key in memo:
            return memo[memo_key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if memo_file:
        memo[memo_key] = digest
        try:
            atomic_write_text(memo_file, json.dumps(memo))
        except OSError:
            pass
    return digest
