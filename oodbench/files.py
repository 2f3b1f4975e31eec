"""Files written whole or not at all, with the permissions the user's umask asks for.

Temporary files and folders (``tempfile.mkstemp`` / ``mkdtemp``) are created private (0600 / 0700);
before they are renamed into place they get the mode an ordinary ``open`` / ``mkdir`` would have given
(0666 / 0777 minus the umask), so a cache or results folder shared on a cluster stays readable to
colleagues. File contents are flushed to disk (``fsync``) before the rename, and the folder after it.

Temporary names carry their writer (``pid<PID>@<host>``), so that what a killed process left behind can be
told from what a live one is still writing: :func:`sweep_stale_temps` removes temporaries whose writer
is gone (same host, process not running) or that are older than :data:`STALE_AFTER_S` (other hosts).
A failed write (disk full, read-only, no permission) removes its temporaries and becomes a
:func:`write_error`, one paragraph that says what could not be written and that nothing was left half-done.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from oodbench.errors import OodbenchError

log = logging.getLogger(__name__)

_umask_lock = threading.Lock()
#: A temporary whose writer runs on another host is removed once it is this old (seconds). Every temporary
#: oodbench makes lives for seconds (a cache entry, a checkpoint) or minutes (a generated toyworld split).
STALE_AFTER_S = 24 * 3600
_OWNER_RE = re.compile(r"pid(\d+)@([^/]+?)-[^-]*$")


def current_umask() -> int:
    """The process's umask (read by setting it and setting it back, under a lock)."""
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~current_umask()


def dir_mode() -> int:
    return 0o777 & ~current_umask()


def owner_tag() -> str:
    """``pid<PID>@<host>``: who writes a temporary (parsed back by :func:`sweep_stale_temps`)."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"pid{os.getpid()}@{host}"


def _write_and_sync(fh, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """Write ``data`` and flush it to the disk (where a full disk shows up; tests fail it here)."""
    fh.write(data)
    fh.flush()
    os.fsync(fh.fileno())


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to the disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_file(path: Path, data: bytes) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{owner_tag()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write_and_sync(fh, data)
        os.chmod(tmp, file_mode())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsynced, then renamed."""
    atomic_write_many({path: data})


def atomic_write_text(path: Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_many(files: Mapping[Path, bytes]) -> None:
    """Write several files so that none is renamed into place before all are safely on disk.

    Every file is written and fsynced under a temporary name first; only then are they renamed, in the
    order given (put the file whose presence means "complete" last). A failure while writing (disk full)
    removes every temporary and leaves the old files, if any, untouched.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            temps.append((_temp_file(path, data), path))
        for tmp, path in temps:
            os.replace(tmp, path)
        for folder in {path.parent for _, path in temps}:
            fsync_dir(folder)
    except BaseException:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through an fsynced temporary in ``dst``'s folder, then rename."""
    dst = Path(dst)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.{owner_tag()}-", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, Path(src).open("rb") as fh:
            shutil.copyfileobj(fh, out, 1 << 20)
            _write_and_sync(out, b"")
        os.chmod(tmp, file_mode())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(dst.parent)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new temporary folder under ``parent``, named ``<prefix>pid<PID>@<host>-<random>``, with the
    umask's folder mode (not mkdtemp's 0700)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{prefix}{owner_tag()}-", dir=parent))
    os.chmod(tmp, dir_mode())
    return tmp


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError:
        return True
    return True


def is_stale(path: Path, max_age_s: float = STALE_AFTER_S) -> bool:
    """True when the temporary ``path`` was left by a writer that is gone (see the module docstring)."""
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > max_age_s:
        return True
    m = _OWNER_RE.search(path.name.removesuffix(".tmp"))
    if m is None:
        return False  # an older oodbench's temporary: only its age tells
    pid, host = int(m.group(1)), m.group(2)
    here = owner_tag().split("@", 1)[1]
    return host == here and pid != os.getpid() and not _pid_running(pid)


def sweep_stale_temps(parent: Path, prefixes: Sequence[str], max_age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the stale temporaries (folders or files) under ``parent`` whose names start with a prefix."""
    removed: list[Path] = []
    try:
        children = list(Path(parent).iterdir())
    except OSError:
        return removed
    for child in children:
        if any(child.name.startswith(p) for p in prefixes) and is_stale(child, max_age_s):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            if not child.exists():
                log.info("removed %s, left behind by an interrupted write", child)
                removed.append(child)
    return removed


def write_error(what: str, path: Path, exc: OSError, then: str = "") -> OodbenchError:
    """The user error for a failed write: what, where, why (disk full, read-only, ...), what to do."""
    reason = exc.strerror or str(exc)
    advice = {
        errno.ENOSPC: "The disk is full: free some space",
        errno.EDQUOT: "Your disk quota is exceeded: free some space",
        errno.EROFS: "The file system is read-only: choose another place",
        errno.EACCES: "You may not write there: choose another place or fix the permissions",
        errno.EPERM: "You may not write there: choose another place or fix the permissions",
    }.get(exc.errno or 0, "Fix the cause")
    return OodbenchError(f"Could not write {what} {path} ({reason}). Nothing of it was left half-written. "
                         f"{advice}, then run the command again{(' ' + then) if then else ''}.")


def check_writable_dir(path: Path, what: str, option: str) -> None:
    """Fail early unless ``path`` is, or can be created as, a folder this process may write into.

    Creates nothing: it looks at ``path`` or, when missing, at its nearest existing parent.
    """
    path = Path(path).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise OodbenchError(f"{option} {path} {where}, but {what} go into a folder there. Pass {option} "
                            "with a folder (it is created if missing).")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise OodbenchError(f"{option} {path}: {probe} is not writable by you, so {what} could not be "
                            f"written there. Pass {option} with a folder you may write into.")
