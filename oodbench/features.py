"""FeatureStore: an on-disk cache of arrays (image features, text features, mined negatives).

Layout: ``<root>/<kind>/<key>/`` holding one ``<name>.npy`` per array plus ``meta.json``. The key is
the sha256 of the canonical JSON of the key parts (backbone identity, data set identity, ...), which
``meta.json`` repeats in full. Entries are written into a temporary folder and renamed into place, so
an interrupted run never leaves an entry that a later run reads as complete. Arrays are plain ``.npy``
(no pickle), read memory-mapped.

Default root: ``$OODBENCH_CACHE`` or ``~/.cache/oodbench``; ``--cache-dir`` overrides both.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import OodbenchError
from oodbench.files import make_temp_dir

log = logging.getLogger(__name__)

CACHE_ENV = "OODBENCH_CACHE"
FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "oodbench"


def key_of(parts: Mapping[str, Any]) -> str:
    """Stable 24-hex-digit key of a JSON-able mapping."""
    blob = json.dumps({"v": FORMAT_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class EntryInfo:
    kind: str
    key: str
    path: Path
    size_bytes: int
    created: str
    meta: dict[str, Any]


class EntryWriter:
    """The arrays of a cache entry being written (see :meth:`FeatureStore.writing`)."""

    def __init__(self, folder: Path, final: Path) -> None:
        self.folder = folder
        self.final = final
        self.names: list[str] = []
        self._maps: list[np.memmap] = []

    def _claim(self, name: str) -> Path:
        if name in self.names:
            raise ValueError(f"array {name!r} written twice")
        self.names.append(name)
        return self.folder / f"{name}.npy"

    def put(self, name: str, array: np.ndarray) -> None:
        """Store ``array`` as ``<name>.npy``."""
        np.save(self._claim(name), np.asarray(array), allow_pickle=False)

    def open(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A new ``<name>.npy`` of ``shape`` and ``dtype`` as a writable memory map, for the caller to fill."""
        array = np.lib.format.open_memmap(self._claim(name), mode="w+", dtype=np.dtype(dtype), shape=shape)
        self._maps.append(array)
        return array

    def flush(self) -> None:
        for array in self._maps:
            array.flush()


class FeatureStore:
    """Content-keyed, atomically written array cache. ``hits``/``misses`` count lookups."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def _dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def load(self, kind: str, parts: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The arrays stored for (kind, parts), memory-mapped, or None."""
        path = self._dir(kind, key_of(parts))
        meta_file = path / "meta.json"
        if not meta_file.is_file():
            self.misses += 1
            return None
        try:
            meta = json.loads(meta_file.read_text())
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False)
                      for name in meta["arrays"]}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("cache entry %s is unreadable (%s); recomputing", path, exc)
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def save(self, kind: str, parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
             meta: Mapping[str, Any] | None = None) -> Path:
        """Write an entry atomically (temporary folder, then rename) and return its folder."""
        with self.writing(kind, parts, meta) as entry:
            for name, arr in arrays.items():
                entry.put(name, arr)
        return entry.final

    @contextlib.contextmanager
    def writing(self, kind: str, parts: Mapping[str, Any],
                meta: Mapping[str, Any] | None = None) -> Iterator[EntryWriter]:
        """Build an entry in a temporary folder; it is renamed into place when the block ends without error.

        Inside the block, ``entry.put(name, array)`` stores an array and ``entry.open(name, shape, dtype)``
        returns a writable memory map of a new ``.npy`` file for the caller to fill (arrays too large to
        hold in memory, such as patch features). An error or interrupt inside the block leaves nothing.
        """
        final = self._dir(kind, key_of(parts))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(final.parent, prefix=f".tmp-{final.name}-")
        entry = EntryWriter(tmp, final)
        try:
            yield entry
            entry.flush()
            record = {
                "kind": kind,
                "key_parts": dict(parts),
                "arrays": sorted(entry.names),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "meta": dict(meta or {}),
            }
            (tmp / "meta.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str))
            try:
                tmp.rename(final)
            except OSError:  # another process finished the same entry first: keep theirs
                if not (final / "meta.json").is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def get_or_compute(self, kind: str, parts: Mapping[str, Any],
                       compute: Callable[[], Mapping[str, np.ndarray]],
                       meta: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
        found = self.load(kind, parts)
        if found is not None:
            return found
        arrays = dict(compute())
        self.save(kind, parts, arrays, meta)
        return arrays

    # ----------------------------------------------------------------------------- maintenance
    def entries(self, kind: str | None = None) -> list[EntryInfo]:
        out: list[EntryInfo] = []
        if not self.root.is_dir():
            return out
        kinds = [kind] if kind else sorted(p.name for p in self.root.iterdir() if p.is_dir())
        for k in kinds:
            base = self.root / k
            if not base.is_dir():
                continue
            for entry in sorted(base.iterdir()):
                meta_file = entry / "meta.json"
                if entry.name.startswith(".tmp-") or not meta_file.is_file():
                    continue
                try:
                    record = json.loads(meta_file.read_text())
                except (OSError, json.JSONDecodeError):
                    record = {}
                size = sum(f.stat().st_size for f in entry.iterdir() if f.is_file())
                out.append(EntryInfo(k, entry.name, entry, size, record.get("created", "?"),
                                     {**record.get("key_parts", {}), **record.get("meta", {})}))
        return out

    def clear(self, kind: str | None = None) -> int:
        """Delete entries (all, or of one kind) and stale temporary folders; returns how many entries."""
        if not self.root.is_dir():
            return 0
        if kind is not None and not (self.root / kind).is_dir():
            known = sorted(p.name for p in self.root.iterdir() if p.is_dir())
            raise OodbenchError(f"No cache entries of kind {kind!r} under {self.root}. "
                                f"Kinds present: {', '.join(known) or '(none)'}.")
        n = len(self.entries(kind))
        targets = [self.root / kind] if kind else [p for p in self.root.iterdir() if p.is_dir()]
        for t in targets:
            shutil.rmtree(t, ignore_errors=True)
        return n
