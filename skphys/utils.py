"""Atomic file writes: a file either appears complete or not at all.

Every writer here writes to a temporary file in the destination's directory (so the final
:func:`os.replace` is a rename on one file system, atomic on POSIX and Windows) and moves it into
place only once the write has succeeded. If anything fails, including ``KeyboardInterrupt``, the
temporary file is removed and an existing file at the destination is left untouched. Long jobs that
are killed mid-write therefore never leave a truncated pickle, CSV, array or figure behind.

- :func:`atomic_path`: the building block, a context manager yielding the temporary path for any
  writer that takes a file name (``DataFrame.to_csv``, ``torch.save``, ``h5py.File``...).
- :func:`atomic_write_text`, :func:`atomic_write_bytes`: strings and bytes.
- :func:`atomic_pickle`: any picklable object, e.g. a fitted estimator.
- :func:`atomic_savez`: numpy arrays (``.npz``).
- :func:`atomic_savefig`: matplotlib figures (the format follows the file's extension).

And for scripts that run under ``torchrun``: :func:`is_main_process`, so that only one process
prints and writes the script's results.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "atomic_write_bytes",
    "atomic_pickle",
    "atomic_savez",
    "atomic_savefig",
    "is_main_process",
]

StrPath = str | os.PathLike


def _destination(path: StrPath, make_parents: bool) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"path must name a file, got {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; give the path of a file")
    parent = path.parent
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
        raise FileNotFoundError(
            f"directory {parent} does not exist (create it, or pass make_parents=True) to write {path.name}"
        )
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: StrPath, *, make_parents: bool = False, fsync: bool = True) -> Iterator[Path]:
    """Context manager yielding a temporary path that replaces ``path`` when the block succeeds.

    The temporary file lies in ``path``'s directory and keeps its extension (writers such as
    :meth:`matplotlib.figure.Figure.savefig` or :func:`numpy.savez` choose the format from it). It
    exists, empty, when the block starts. When the block exits normally, the file is flushed to disk
    (``fsync``), given the permissions a newly created file would have (or those of the file it
    replaces) and moved onto ``path`` with :func:`os.replace`. When the block raises, the temporary
    file is removed, ``path`` is left as it was and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file. A symbolic link at ``path`` is replaced by the new file, not followed.
    make_parents : bool, default=False
        Create missing parent directories. Without it a missing directory raises
        :class:`FileNotFoundError` before anything is written.
    fsync : bool, default=True
        Flush the temporary file to disk before the rename, so that a crash of the machine
        cannot leave an empty file under the final name.

    Yields
    ------
    tmp : pathlib.Path
        Where to write.

    Raises
    ------
    FileNotFoundError
        The destination directory does not exist and ``make_parents`` is False.
    IsADirectoryError
        ``path`` is a directory.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import pandas as pd
    >>> from skphys.utils import atomic_path
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_path(out) as tmp:
    ...     pd.DataFrame({"a": [1, 2]}).to_csv(tmp, index=False)
    >>> out.read_text().split()
    ['a', '1', '2']
    >>> try:
    ...     with atomic_path(out) as tmp:
    ...         _ = tmp.write_text("half a ta")
    ...         raise RuntimeError("killed")
    ... except RuntimeError:
    ...     pass
    >>> out.read_text().split()  # the old file is intact and no temporary file is left
    ['a', '1', '2']
    >>> sorted(p.name for p in out.parent.iterdir())
    ['table.csv']
    """
    path = _destination(path, make_parents)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        try:
            mode = path.stat().st_mode & 0o7777 if path.exists() and not path.is_symlink() else 0o666 & ~_umask()
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)  # mkstemp creates 0600 files; give the usual permissions
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_text(path: StrPath, text: str, *, encoding: str = "utf-8", make_parents: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    text : str
        Content. Newlines are written as given (no platform translation).
    encoding : str, default="utf-8"
    make_parents : bool, default=False
        Create missing parent directories.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skphys.utils import atomic_write_text
    >>> p = atomic_write_text(pathlib.Path(tempfile.mkdtemp()) / "results.md", "| a |\\n|---|\\n| 1 |\\n")
    >>> p.read_text().splitlines()[2]
    '| 1 |'
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    with atomic_path(path, make_parents=make_parents) as tmp:
        with open(tmp, "w", encoding=encoding, newline="") as fh:
            fh.write(text)
    return Path(path)


def atomic_write_bytes(path: StrPath, data: bytes, *, make_parents: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from skphys.utils import atomic_write_bytes
    >>> atomic_write_bytes(pathlib.Path(tempfile.mkdtemp()) / "blob.bin", b"\\x00\\x01").read_bytes()
    b'\\x00\\x01'
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, got {type(data).__name__}")
    with atomic_path(path, make_parents=make_parents) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_pickle(obj: Any, path: StrPath, *, protocol: int | None = None, make_parents: bool = False) -> Path:
    """Pickle ``obj`` to ``path`` atomically (see :func:`atomic_path`).

    An object that fails to pickle (e.g. one holding a lambda) raises and leaves no file; a
    previous pickle at ``path`` survives.

    Parameters
    ----------
    obj : object
        Anything picklable, e.g. a fitted skphys estimator (torch estimators store their modules
        on the CPU when pickled).
    path : str or os.PathLike
    protocol : int, default=None
        Pickle protocol (``None``: :data:`pickle.DEFAULT_PROTOCOL`).
    make_parents : bool, default=False

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import pickle, tempfile, pathlib
    >>> from sklearn.linear_model import Ridge
    >>> from skphys.utils import atomic_pickle
    >>> p = atomic_pickle(Ridge(alpha=2.0).fit([[0.0], [1.0]], [0.0, 1.0]),
    ...                   pathlib.Path(tempfile.mkdtemp()) / "model.pkl")
    >>> with open(p, "rb") as fh:
    ...     pickle.load(fh).alpha
    2.0
    """
    with atomic_path(path, make_parents=make_parents) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=protocol)
    return Path(path)


def atomic_savez(path: StrPath, *, compressed: bool = False, make_parents: bool = False, **arrays: Any) -> Path:
    """Save named arrays to an ``.npz`` file atomically (see :func:`atomic_path`).

    Unlike :func:`numpy.savez`, the file is written exactly at ``path``: no ``.npz`` is appended.

    Parameters
    ----------
    path : str or os.PathLike
    compressed : bool, default=False
        Use :func:`numpy.savez_compressed`.
    make_parents : bool, default=False
    **arrays : array-like
        Arrays to store, by name. Object arrays are refused (they would need pickling to load).

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import numpy as np
    >>> from skphys.utils import atomic_savez
    >>> p = atomic_savez(pathlib.Path(tempfile.mkdtemp()) / "rmse.npz", model=np.array([0.1, 0.2]))
    >>> with np.load(p) as z:
    ...     z["model"].tolist()
    [0.1, 0.2]
    """
    if not arrays:
        raise ValueError("atomic_savez needs at least one named array")
    converted = {}
    for name, value in arrays.items():
        a = np.asarray(value)
        if a.dtype == object:
            raise TypeError(f"array {name!r} has dtype object; convert it (e.g. strings with dtype=str)")
        converted[name] = a
    save = np.savez_compressed if compressed else np.savez
    with atomic_path(path, make_parents=make_parents) as tmp:
        with open(tmp, "wb") as fh:  # a file object: numpy appends no extension
            save(fh, **converted)
    return Path(path)


def atomic_savefig(fig: Any, path: StrPath, *, make_parents: bool = False, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (see :func:`atomic_path`).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure, e.g. a Display's ``figure_``.
    path : str or os.PathLike
        Destination; its extension picks the format unless ``format=`` is given.
    make_parents : bool, default=False
    **savefig_kwargs
        Passed to :meth:`matplotlib.figure.Figure.savefig` (``dpi``, ``bbox_inches``...).

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from skphys.utils import atomic_savefig
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> p = atomic_savefig(fig, pathlib.Path(tempfile.mkdtemp()) / "line.png", dpi=50)
    >>> p.read_bytes()[:4]
    b'\\x89PNG'
    >>> plt.close(fig)
    """
    if not hasattr(fig, "savefig"):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    suffix = Path(path).suffix.lstrip(".")
    if "format" not in savefig_kwargs:
        if not suffix:
            raise ValueError(f"{path}: give the file an extension (e.g. .png) or pass format=")
        savefig_kwargs["format"] = suffix
    with atomic_path(path, make_parents=make_parents) as tmp:
        fig.savefig(tmp, **savefig_kwargs)
    return Path(path)


def is_main_process() -> bool:
    """True in the process that should print and write a script's results.

    Under ``torchrun`` (or any initialized ``torch.distributed`` group) that is global rank 0;
    in a plain Python process it is the process itself. skphys estimators already show progress
    and write checkpoints on rank 0 only; scripts use this for their own output.

    Examples
    --------
    >>> from skphys.utils import is_main_process
    >>> is_main_process()  # not launched by torchrun
    True
    """
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return int(os.environ.get("RANK", "0")) == 0
