"""Hashes, in one place: of a list of lines, of a JSON-able value, of a file (memoised), of many files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
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


def sha256_files(paths: Sequence[Path], desc: str = "hashing files", workers: int = 4) -> str:
    """sha256 over the sha256 of each file's bytes, in the order given (read by a few threads, with progress).

    Nothing is memoised: this is what ``--verify-content`` asks for, a fresh look at every byte.
    """
    from concurrent.futures import ThreadPoolExecutor

    from oodbench.progress import progress_bar

    def one(path: Path) -> bytes:
        h = hashlib.sha256()
        with Path(path).open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.digest()

    total = hashlib.sha256()
    with progress_bar() as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        task = bar.add_task(desc, total=len(paths))
        for digest in pool.map(one, paths):
            total.update(digest)
            bar.advance(task)
    return total.hexdigest()
