"""FeatureStore: an on-disk cache of arrays (image features, text features, mined negatives).

Layout: ``<root>/<kind>/<key>/`` holding one ``<name>.npy`` per array plus ``meta.json``. The key is
the sha256 of the canonical JSON of the key parts (backbone identity, data set identity, ...), which
``meta.json`` repeats in full, together with each array's dtype, shape, size in bytes and CRC-32 of its
data, computed from the array as it is written.

Writing: the arrays and ``meta.json`` go into a temporary folder, are fsynced, and the folder is renamed
into place (then its parent fsynced), so an interrupted run never leaves an entry that a later run reads
as complete. Temporary folders that a killed writer left behind are removed by the next write of that
kind (:func:`oodbench.files.sweep_stale_temps`). A write that fails (disk full) is logged and skipped:
the run goes on with the arrays it computed.

Reading: every array is checked against ``meta.json`` (header, dtype, shape, byte size, then its CRC-32
over all of its data). An entry that fails any check is *damaged*: a warning names it and the reason, it
is deleted, and its arrays are computed again. Arrays are plain ``.npy`` (no pickle), read memory-mapped.
Why CRC-32: the checksum sits next to the data, so it guards against damage (truncation, flipped bits,
a file replaced by another), not against someone who can rewrite both; for that purpose a CRC detects every
burst of up to 32 flipped bits and anything else with probability 1 - 2^-32, several times faster than
sha256 (README, "Reliability", gives the measured cost).

Default root: ``$OODBENCH_CACHE`` or ``~/.cache/oodbench``; ``--cache-dir`` overrides both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from oodbench.errors import OodbenchError
from oodbench.files import fsync_dir, make_temp_dir, owner_tag, sweep_stale_temps
from oodbench.hashing import sha256_json

log = logging.getLogger(__name__)

CACHE_ENV = "OODBENCH_CACHE"
#: 2: meta.json records each array's dtype, shape, byte size and CRC-32 (entries of version 1 are not read).
FORMAT_VERSION = 2
TEMP_PREFIXES = (".tmp-", ".trash-")
_CRC_BLOCK = 1 << 24


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "oodbench"


def key_of(parts: Mapping[str, Any]) -> str:
    """Stable 24-hex-digit key of a JSON-able mapping."""
    return sha256_json({"v": FORMAT_VERSION, **parts}, 24)


def crc32_of(array: np.ndarray) -> str:
    """CRC-32 (8 hex digits) of an array's data bytes in C order, in blocks (no copy of a C-contiguous array)."""
    flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    crc = 0
    for start in range(0, flat.size, _CRC_BLOCK):
        crc = zlib.crc32(flat[start:start + _CRC_BLOCK], crc)
    return f"{crc:08x}"


def describe_array(array: np.ndarray) -> dict[str, Any]:
    """What ``meta.json`` records about one array (checked on every read)."""
    return {"dtype": array.dtype.str, "shape": list(array.shape), "bytes": int(array.nbytes),
            "crc32": crc32_of(array)}


class DamagedEntry(Exception):
    """A cache entry that does not match its own record (internal: it is recomputed, never shown raw)."""


def _save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, array, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _read_array(path: Path, record: Mapping[str, Any]) -> np.ndarray:
    """The array at ``path`` memory-mapped, after checking it against ``record``; else :class:`DamagedEntry`."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DamagedEntry(f"{path.name} is missing ({exc.strerror})") from None
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - EOFError (empty file), ValueError (bad header), ...
        raise DamagedEntry(f"{path.name} is unreadable ({type(exc).__name__}: {exc or 'empty file'})") from None
    if array.dtype.str != record.get("dtype") or list(array.shape) != record.get("shape"):
        raise DamagedEntry(f"{path.name} holds {array.dtype.str} {list(array.shape)}, the entry recorded "
                           f"{record.get('dtype')} {record.get('shape')}")
    if array.nbytes != record.get("bytes") or size - array.offset != array.nbytes:
        raise DamagedEntry(f"{path.name} has {size - array.offset} data bytes, expected {record.get('bytes')}")
    crc = crc32_of(array)
    if crc != record.get("crc32"):
        raise DamagedEntry(f"{path.name} has CRC-32 {crc}, the entry recorded {record.get('crc32')} "
                           "(its bytes changed after it was written)")
    return array


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
        self.checksums: dict[str, dict[str, Any]] = {}
        self._maps: dict[str, np.memmap] = {}

    def _path(self, name: str) -> Path:
        if name in self.checksums or name in self._maps:
            raise ValueError(f"array {name!r} written twice")
        return self.folder / f"{name}.npy"

    def put(self, name: str, array: np.ndarray) -> None:
        """Store ``array`` as ``<name>.npy``."""
        path = self._path(name)
        array = np.asarray(array)
        self.checksums[name] = describe_array(array)
        _save_array(path, array)

    def open(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.memmap:
        """A new ``<name>.npy`` of ``shape`` and ``dtype``: a writable memory map for the caller to fill."""
        array = np.lib.format.open_memmap(self._path(name), mode="w+", dtype=np.dtype(dtype), shape=shape)
        self._maps[name] = array
        return array

    def finish(self) -> None:
        """Flush and fsync the memory-mapped arrays and record their checksums."""
        for name, array in self._maps.items():
            array.flush()
            with (self.folder / f"{name}.npy").open("rb+") as fh:
                os.fsync(fh.fileno())
            self.checksums[name] = describe_array(array)
        self._maps.clear()


class FeatureStore:
    """Content-keyed, atomically written, self-checking array cache. ``hits``/``misses``/``damaged`` count lookups."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_cache_dir()
        self.hits = 0
        self.misses = 0
        self.damaged = 0

    def _dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def load(self, kind: str, parts: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
        """The arrays stored for (kind, parts), memory-mapped and verified, or None (missing or damaged)."""
        path = self._dir(kind, key_of(parts))
        meta_file = path / "meta.json"
        if not path.is_dir():
            self.misses += 1
            return None
        try:
            arrays = self._verified(path, meta_file)
        except DamagedEntry as exc:
            log.warning("cache entry %s is damaged: %s. Deleting it; its arrays will be computed again.",
                        path, exc)
            self._discard(path)
            self.damaged += 1
            self.misses += 1
            return None
        self.hits += 1
        return arrays

    def _verified(self, path: Path, meta_file: Path) -> dict[str, np.ndarray]:
        try:
            record = json.loads(meta_file.read_text(encoding="utf-8"))
            checks = record["checksums"]
            names = record["arrays"]
        except FileNotFoundError:
            raise DamagedEntry("meta.json is missing") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DamagedEntry(f"meta.json is unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(names, list) or not isinstance(checks, dict) or set(names) != set(checks):
            raise DamagedEntry("meta.json does not list a checksum for every array")
        return {name: _read_array(path / f"{name}.npy", checks[name]) for name in names}

    def _discard(self, path: Path) -> None:
        """Delete an entry: renamed away first (one step, so no reader sees half of it), then removed."""
        trash = path.parent / f".trash-{path.name}-{owner_tag()}-x"
        try:
            path.rename(trash)
        except OSError:
            trash = path
        shutil.rmtree(trash, ignore_errors=True)

    def save(self, kind: str, parts: Mapping[str, Any], arrays: Mapping[str, np.ndarray],
             meta: Mapping[str, Any] | None = None) -> Path:
        """Write an entry atomically (temporary folder, fsync, rename) and return its folder.

        A write that fails with an OS error (disk full, read-only cache) is logged and leaves nothing behind;
        the caller goes on with its arrays (the cache only saves time).
        """
        final = self._dir(kind, key_of(parts))
        try:
            with self.writing(kind, parts, meta) as entry:
                for name, arr in arrays.items():
                    entry.put(name, arr)
        except OSError as exc:
            log.warning("could not write the cache entry %s (%s); going on without caching it", final,
                        exc.strerror or exc)
        return final

    @contextlib.contextmanager
    def writing(self, kind: str, parts: Mapping[str, Any],
                meta: Mapping[str, Any] | None = None) -> Iterator[EntryWriter]:
        """Build an entry in a temporary folder; it is checksummed and renamed into place when the block ends.

        Inside the block, ``entry.put(name, array)`` stores an array and ``entry.open(name, shape, dtype)``
        returns a writable memory map of a new ``.npy`` file for the caller to fill (arrays too large to
        hold in memory, such as patch features); their checksums are computed when the block ends. An error
        or interrupt inside the block leaves nothing; OS errors (disk full) propagate to the caller.
        """
        final = self._dir(kind, key_of(parts))
        final.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(final.parent, TEMP_PREFIXES)
        tmp = make_temp_dir(final.parent, prefix=f".tmp-{final.name}-")
        entry = EntryWriter(tmp, final)
        try:
            yield entry
            entry.finish()
            record = {
                "kind": kind,
                "key_parts": dict(parts),
                "arrays": sorted(entry.checksums),
                "checksums": entry.checksums,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "meta": dict(meta or {}),
            }
            with (tmp / "meta.json").open("w", encoding="utf-8") as fh:
                fh.write(json.dumps(record, indent=1, sort_keys=True, default=str))
                fh.flush()
                os.fsync(fh.fileno())
            fsync_dir(tmp)
            try:
                tmp.rename(final)
            except OSError:  # another process finished the same entry first: keep theirs
                if not (final / "meta.json").is_file():
                    raise
            fsync_dir(final.parent)
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
                if entry.name.startswith(TEMP_PREFIXES) or not meta_file.is_file():
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
