"""Reading weights files without ever running code stored in them: the one loader for every file oodbench reads.

What is read, and how (the kind is detected from the content, not from the file name):

- **safetensors**: safetensors' own parser (a JSON header, then raw little-endian bytes); nothing executes.
- **torch files** (``torch.save`` zip or legacy format): ``torch.load(weights_only=True)``, passed explicitly
  (an explicit argument wins over ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``), after checking that this torch
  really refuses a pickle naming a global outside its allow-list (:func:`weights_only_enforced`); when it
  does not, the file is refused. A failed load is an error, never retried without ``weights_only`` (open_clip's
  ``load_checkpoint`` retries with a plain ``torch.load`` on ``TypeError``: a crafted file that first raises
  ``TypeError`` in the safe unpickler then runs its payload when that variable is set).
- **TorchScript archives** (OpenAI's original CLIP ``.pt`` files): *not* ``torch.jit.load``, which compiles
  the archive's TorchScript code and runs it at load time (its classes' ``__setstate__``), can reach any
  registered operator, and parses the untrusted code in C++. Instead the archive's ``data.pkl`` is read by
  :class:`_TensorOnlyUnpickler`, which rebuilds tensors from the archive's storages and keeps every other
  object as an inert record of its attributes; its allow-list names no callable that can do anything but
  build a tensor or a container. The parameter names are the attribute paths, which is what
  ``ScriptModule.state_dict()`` returns.

Anything else is refused with an :class:`UnsafeFileError` naming the file and what to do.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from oodbench.errors import CheckpointError

#: Storage classes a TorchScript ``data.pkl`` may name, and the dtype each stands for.
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}

CONVERT_HINT = (
    "oodbench reads weights only as safetensors, as torch files that load with weights_only=True, or as "
    "TorchScript archives (their tensors only); it never runs code stored in a file. If you trust where the "
    "file comes from, convert it once in a separate Python session (torch.load(..., weights_only=False), "
    "then safetensors.torch.save_file(state_dict, 'weights.safetensors')) and pass the .safetensors file."
)


class UnsafeFileError(CheckpointError):
    """A weights file that the safe loaders cannot read (or that asks for code to be run)."""


# --------------------------------------------------------------------------------------------- detection
def file_kind(path: Path) -> str:
    """``safetensors``, ``torchscript``, ``torch-zip``, ``torch-legacy`` or ``numpy``, from the content."""
    with Path(path).open("rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < (1 << 30):
        return "safetensors"
    if head[:6] == b"\x93NUMPY":
        return "numpy"
    if head[:2] == b"PK":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return "torch-legacy"
        if any(n.endswith(".npy") for n in names) and not any(n.endswith("data.pkl") for n in names):
            return "numpy"
        if any(n.endswith("/constants.pkl") for n in names):
            return "torchscript"
        return "torch-zip"
    return "torch-legacy"


# --------------------------------------------------------------------------------------------- torch.load
_canary_calls: list[int] = []


def _canary() -> None:
    """Called only by a torch that unpickles arbitrary globals despite ``weights_only=True``."""
    _canary_calls.append(1)


class _Canary:
    def __reduce__(self) -> tuple[Any, ...]:
        return (_canary, ())


def weights_only_enforced() -> bool:
    """True when this torch refuses, under ``weights_only=True``, a pickle naming a non-allowed global.

    Checked on a tiny in-memory file on every call (about a millisecond), so that an environment variable
    set or a torch patched after import is seen. A torch that calls the harmless probe instead is not trusted.
    """
    import torch

    buf = io.BytesIO()
    torch.save(_Canary(), buf)
    buf.seek(0)
    before = len(_canary_calls)
    try:
        torch.load(buf, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        return len(_canary_calls) == before
    except Exception:  # noqa: BLE001 - anything but the documented refusal: cannot confirm
        return False
    return False


def torch_load(path: Path, *, what: str = "weights file", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, or an :class:`UnsafeFileError`. Never a fallback.

    ``mmap`` maps zip-format files instead of reading them (large files of which little is used).
    TorchScript archives are refused here: read them with :func:`read_state_dict`.
    """
    import torch

    path = Path(path)
    kind = file_kind(path)
    if kind == "torchscript":
        raise UnsafeFileError(f"The {what} {path} is a TorchScript archive, not a torch state file. "
                              + CONVERT_HINT)
    if not weights_only_enforced():
        raise UnsafeFileError(
            f"Refusing to read the {what} {path}: this torch ({torch.__version__}) does not honour "
            "weights_only=True (a test pickle naming a forbidden global was unpickled), so loading the file "
            f"could run code stored in it. Use torch >= 2.4. {CONVERT_HINT}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and kind == "torch-zip")
    except Exception as exc:  # noqa: BLE001 - pickled code, truncated files, other formats: all refused
        raise UnsafeFileError(
            f"Could not read the {what} {path} safely ({type(exc).__name__}: {_first_line(exc)}). "
            + CONVERT_HINT) from None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


# --------------------------------------------------------------------------------------------- safetensors
def read_safetensors(path: Path, *, what: str = "weights file") -> tuple[dict[str, Any], dict[str, str]]:
    """The tensors and the string metadata of a safetensors file (CPU)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:  # noqa: BLE001 - any parse failure is an unreadable file
        raise UnsafeFileError(f"Could not read the {what} {path} as a safetensors file "
                              f"({type(exc).__name__}: {_first_line(exc)}). Is it complete?") from None
    return tensors, meta


# --------------------------------------------------------------------------------------------- TorchScript
class _Record:
    """An inert stand-in for a TorchScript object: it keeps the state it is given and runs nothing."""

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _StorageType:
    def __init__(self, dtype_name: str) -> None:
        self.dtype_name = dtype_name


def _rebuild_tensor(storage: Any, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    requires_grad: bool = False, hooks: Any = None, metadata: Any = None) -> Any:
    """A tensor viewing ``storage`` (bounds are checked by ``Tensor.set_``); nothing else is honoured."""
    import torch

    if not isinstance(storage, torch.storage.TypedStorage):
        raise pickle.UnpicklingError("a tensor refers to something that is not a storage of the archive")
    if not all(isinstance(v, int) for v in (offset, *size, *stride)):
        raise pickle.UnpicklingError("a tensor has a non-integer size, stride or offset")
    t = torch.empty((0,), dtype=storage.dtype)
    return t.set_(storage._untyped_storage, offset, tuple(size), tuple(stride))


def _identity(value: Any, *_: Any) -> Any:
    return value


class _TensorOnlyUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript ``data.pkl``: tensors, containers, and inert records; nothing else."""

    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self.archive = archive
        self.prefix = prefix
        self.storages: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch.jit._pickle" and (name == "restore_type_tag" or name.startswith("build_")):
            return _identity  # typed-container helpers: they only return their argument
        if module.startswith("__torch__.") or module == "__torch__":
            return _Record
        raise pickle.UnpicklingError(f"the archive's data.pkl names {module}.{name}, which a tensors-only "
                                     "reader does not rebuild")

    def persistent_load(self, pid: Any) -> Any:
        import torch

        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80}")
        storage_type, key, numel = pid[1], pid[2], pid[4]
        if key not in self.storages:
            dtype = getattr(torch, storage_type.dtype_name)
            try:
                raw = self.archive.read(f"{self.prefix}/data/{key}")
            except KeyError:
                raise pickle.UnpicklingError(f"storage {key} is missing from the archive") from None
            itemsize = torch.empty((), dtype=dtype).element_size()
            if not isinstance(numel, int) or numel * itemsize != len(raw):
                raise pickle.UnpicklingError(f"storage {key} holds {len(raw)} bytes, not {numel} x {itemsize}")
            flat = torch.frombuffer(bytearray(raw), dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            self.storages[key] = torch.storage.TypedStorage(
                wrap_storage=flat.untyped_storage(), dtype=dtype, _internal=True)
        return self.storages[key]


def read_torchscript_tensors(path: Path, *, what: str = "weights file") -> dict[str, Any]:
    """Every tensor attribute of a TorchScript archive's module tree, by dotted path (its state dict)."""
    import torch

    try:
        with zipfile.ZipFile(path) as zf:
            pickles = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise pickle.UnpicklingError("no single top-level data.pkl")
            prefix = pickles[0].split("/", 1)[0]
            root = _TensorOnlyUnpickler(zf.read(pickles[0]), zf, prefix).load()
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, ValueError, TypeError,
            RuntimeError, AttributeError, IndexError, KeyError) as exc:
        raise UnsafeFileError(f"Could not read the tensors of the TorchScript archive {path} "
                              f"({type(exc).__name__}: {_first_line(exc)}). {CONVERT_HINT}") from None
    out: dict[str, Any] = {}

    def walk(obj: Any, prefix: str) -> None:
        state = obj.state if isinstance(obj, _Record) else None
        if not isinstance(state, Mapping):
            return
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                out[prefix + str(name)] = value
            elif isinstance(value, _Record):
                walk(value, f"{prefix}{name}.")

    walk(root, "")
    if not out:
        raise UnsafeFileError(f"The TorchScript archive {path} holds no tensors that oodbench can read "
                              f"as weights. {CONVERT_HINT}")
    return out


# --------------------------------------------------------------------------------------------- state dicts
def read_state_dict(path: Path, *, what: str = "weights file") -> dict[str, Any]:
    """The tensors of a weights file, by name, read safely (see the module docstring); on the CPU.

    A torch file holding ``{"state_dict": {...}, ...}`` gives its ``state_dict``. Values that are not
    tensors are refused.
    """
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"The {what} {path} does not exist or is not a file.")
    kind = file_kind(path)
    if kind == "safetensors":
        state: Any = read_safetensors(path, what=what)[0]
    elif kind == "torchscript":
        state = read_torchscript_tensors(path, what=what)
    elif kind == "numpy":
        raise UnsafeFileError(f"The {what} {path} is a numpy file, not a state dict of tensors.")
    else:
        state = torch_load(path, what=what)
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"The {what} {path} does not hold a state dict (a mapping of names to tensors); "
                              f"it holds {type(state).__name__}.")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"The {what} {path} holds entries that are not tensors, e.g. {bad[0]!r}; "
                              "pass a file of model weights.")
    return {str(k): v for k, v in state.items()}
