"""Windows of a The Well dataset read on demand: :class:`LazyWindows` and :func:`shard_indices`.

Reading is done with h5py directly (the_well's ``WellDataset`` defines what the format means and
the tests check that both give the same windows). A batch of windows is read in sorted order,
grouped by file and trajectory; the windows of one trajectory that overlap or lie close together
are merged into one contiguous hyperslab of frames, read once per field and cut into windows.
File handles stay open per process (a small LRU), are dropped after ``fork`` and are not pickled.
"""

from __future__ import annotations

import numbers
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import h5py
import numpy as np
from h5py import h5s, h5t

__all__ = ["LazyWindows", "shard_indices"]

_MAX_OPEN_FILES = 64  # per LazyWindows and process; older handles are closed
_CHUNK_CACHE_BYTES = 16 * 2**20  # HDF5 chunk cache per open file (only used by chunked files)
_FLOAT32 = h5t.py_create(np.dtype("<f4"))


@dataclass(frozen=True)
class _FileLayout:
    """What the reader needs of one file: its path, sizes and time-varying fields."""

    path: str
    n_trajectories: int
    n_steps: int
    fields: tuple  # of WellField, in The Well's channel order


def _check_rank(rank, world_size):
    for name, v in (("rank", rank), ("world_size", world_size)):
        if not isinstance(v, numbers.Integral) or isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be an int, got {v!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return int(rank), int(world_size)


def shard_indices(X, rank, world_size):
    """Rows of ``X`` that process ``rank`` of ``world_size`` should read.

    The rows are split into ``world_size`` contiguous blocks whose sizes differ by at most one
    (``len(X) // world_size`` or one more; the first ``len(X) % world_size`` ranks get one more).
    For a :class:`LazyWindows` the rows are in file order, so a rank's block covers a contiguous
    run of files, and a rank that reads only its rows (e.g. through
    ``X.subset(shard_indices(X, rank, world_size))``) opens at most
    ``ceil(n_files / world_size) + 1`` files. Works on any sized array-like (numpy arrays too).

    Parameters
    ----------
    X : array-like or int
        The data (its length is used) or the number of rows.
    rank : int
        This process' rank, ``0 <= rank < world_size``.
    world_size : int
        Number of processes.

    Returns
    -------
    indices : ndarray of int64
        Sorted row indices of this rank's shard. Together, the shards of all ranks partition
        ``range(len(X))``.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys.datasets import shard_indices
    >>> [shard_indices(10, r, 3).tolist() for r in range(3)]
    [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    """
    rank, world_size = _check_rank(rank, world_size)
    if isinstance(X, numbers.Integral) and not isinstance(X, (bool, np.bool_)):
        n = int(X)
        if n < 0:
            raise ValueError(f"the number of rows must be >= 0, got {n}")
    else:
        n = len(X)
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return np.arange(start, start + base + (rank < extra), dtype=np.int64)


class _OpenFile:
    """One file opened for reading: its h5py handle and, for fields stored contiguously (HDF5's
    default layout, no filters), a plain file descriptor and each field's byte offset.

    Contiguous fields are read with one ``os.preadv`` per hyperslab straight into the destination
    buffer: their bytes are the row-major array at ``Dataset.id.get_offset()``. Chunked (or
    compressed) fields go through HDF5 (one low-level hyperslab read on a cached dataspace; the
    chunk cache holds the chunks a batch touches). Both paths give the bytes h5py gives.
    """

    def __init__(self, layout):
        self.layout = layout
        if not os.path.isfile(layout.path):
            raise FileNotFoundError(f"LazyWindows: {layout.path} no longer exists")
        try:
            self.fh = h5py.File(layout.path, "r", rdcc_nbytes=_CHUNK_CACHE_BYTES)
        except OSError as exc:
            raise ValueError(f"LazyWindows: cannot open {layout.path} (corrupt or truncated?): {exc}") from exc
        self.fd = None
        try:
            self.dsets = [self.fh[f.path] for f in layout.fields]
            changed = int(self.fh.attrs["n_trajectories"]) != layout.n_trajectories or any(
                tuple(d.shape) != f.shape for d, f in zip(self.dsets, layout.fields)
            )
            if changed:
                raise ValueError("trajectory count or shapes differ")
            self.raw = [self._raw_layout(d, f) for d, f in zip(self.dsets, layout.fields)]
            if any(r is not None for r in self.raw):
                self.fd = os.open(layout.path, os.O_RDONLY)
        except (KeyError, OSError, ValueError) as exc:
            self.close()
            raise ValueError(f"LazyWindows: the file {layout.path} changed since it was indexed: {exc}") from exc
        self.fspaces = [None] * len(self.dsets)
        self.mspaces = {}

    @staticmethod
    def _raw_layout(dset, field):
        """For a contiguous, allocated float field: (byte offset, stored dtype, bytes per frame,
        bytes per trajectory, stored as float32); else None."""
        if not hasattr(os, "preadv") or dset.chunks is not None or dset.dtype.kind != "f" or dset.external:
            return None
        offset = dset.id.get_offset()
        if offset is None:
            return None
        lead = 2 if field.sample_varying else 1
        frame = int(np.prod(field.shape[lead:], dtype=np.int64)) * dset.dtype.itemsize
        per_traj = frame * field.shape[1] if field.sample_varying else 0
        return int(offset), dset.dtype, frame, per_traj, dset.dtype == np.dtype("=f4")

    def read(self, p, ti, r0, r1, dest):
        """Frames ``r0:r1`` of trajectory ``ti`` of field ``p`` into the C-contiguous float32
        array ``dest`` (any shape of the right size)."""
        raw = self.raw[p]
        try:
            if raw is not None:
                offset, dtype, frame, per_traj, native = raw
                buf = dest if native else np.empty(dest.shape, dtype=dtype)
                got = os.preadv(self.fd, [memoryview(buf).cast("B")], offset + ti * per_traj + r0 * frame)
                if got != buf.nbytes:
                    raise OSError(f"short read: {got} of {buf.nbytes} bytes (truncated file?)")
                if not native:
                    dest[...] = buf
                return
            field = self.layout.fields[p]
            shape = field.shape
            lead = (ti, r0) if field.sample_varying else (r0,)
            start = lead + (0,) * (len(shape) - len(lead))
            count = ((1,) if field.sample_varying else ()) + (r1 - r0,) + shape[len(lead) :]
            fspace = self.fspaces[p]
            if fspace is None:
                fspace = self.fspaces[p] = self.dsets[p].id.get_space()
            fspace.select_hyperslab(start, count)
            mspace = self.mspaces.get(count)
            if mspace is None:
                mspace = self.mspaces[count] = h5s.create_simple(count)
            self.dsets[p].id.read(mspace, fspace, dest.reshape(count), mtype=_FLOAT32)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            field = self.layout.fields[p]
            raise ValueError(
                f"LazyWindows: could not read {field.path} trajectory {ti} frames {r0}:{r1} from {self.layout.path}: {exc!r}"
            ) from exc

    def close_descriptor(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None

    def close(self):
        self.close_descriptor()
        self.fspaces, self.mspaces = [], {}
        fh = getattr(self, "fh", None)
        if fh is not None:
            fh.close()


class LazyWindows:
    """Windows of a The Well dataset, read on demand (an array-like for ``X``).

    Behaves like a read-only float32 array of shape ``(n_windows, n_frames, *space, n_channels)``:
    ``shape``, ``dtype``, ``ndim``, ``len``, and ``__getitem__`` with an int, a slice, an integer
    array or list, or a boolean mask on the first axis (optionally followed by indices on the other
    axes, e.g. ``X[idx, ...]``). Nothing is cached, so memory does not grow with the dataset.
    ``np.asarray(X)`` reads every window (for small datasets only).

    Reading is fast for random batches: :meth:`read` sorts the requested windows, groups them by
    file and trajectory, reads each trajectory's frames as one contiguous h5py hyperslab per field
    (windows that overlap or lie within ``n_frames`` of each other are merged) and returns them in
    the requested order. HDF5 files stay open between reads (at most 64 per process, least
    recently used closed first). Handles are never pickled and are reopened after ``fork``, so a
    ``LazyWindows`` works in ``torch.utils.data.DataLoader`` workers (fork or spawn; each batch is
    one sorted read through ``__getitems__``) and in threads (reads are serialized).

    Pickling stores the file list and the window table, a few kB; files are reopened on first
    read. If a file changed since it was indexed (trajectory counts or shapes), reading raises a
    ValueError; if it is gone, a FileNotFoundError.

    For distributed training, :func:`shard_indices` gives each rank a contiguous block of rows
    (in file order) and :meth:`subset` makes a ``LazyWindows`` of just those rows, which opens only
    the files they live in. :meth:`file_of` and :attr:`open_files` tell which files that is.

    Create it with ``load_well(..., lazy=True)``; do not call the constructor directly.

    Attributes
    ----------
    shape : tuple of int
    dtype : numpy.dtype
        Always float32.
    ndim : int
    field_names : list of str
        Channel names, in channel order.
    path : str
        Dataset directory.
    split : str
    n_frames : int
    files : tuple of str
        The HDF5 files the windows come from, in order.
    groups : ndarray of int64
        Trajectory index (in file order) of each window.
    open_files : list of str
        Files this process holds open for this object now.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.utils import Bunch
    >>> from skphys.datasets import write_well, load_well
    >>> rng = np.random.default_rng(0)
    >>> bunch = Bunch(data=rng.normal(size=(6, 8, 16, 1)).astype(np.float32),
    ...               target=rng.normal(size=(6, 1)), target_names=["a"], field_names=["u"],
    ...               time=np.arange(8.0), coords=(np.arange(16.0),), dim_names=("x",),
    ...               boundary_conditions={"x": "periodic"}, dt=1.0)
    >>> path = write_well(bunch, tempfile.mkdtemp(), "noise", n_trajectories_per_file=3)
    >>> X, y = load_well(path, n_frames=4, lazy=True, return_X_y=True)
    >>> X.shape
    (12, 4, 16, 1)
    >>> batch = X.read([11, 0, 5])                 # one sorted read, returned in this order
    >>> bool(np.array_equal(batch[0], bunch.data[5, 4:8]))
    True
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    >>> X_train.shape, X_test.shape
    ((9, 4, 16, 1), (3, 4, 16, 1))
    >>> from skphys.datasets import shard_indices
    >>> rank1 = X.subset(shard_indices(X, rank=1, world_size=2))   # windows 6..11: the 2nd file
    >>> rank1.shape, sorted(set(X.file_of(shard_indices(X, 1, 2)).tolist()))
    ((6, 4, 16, 1), [1])
    """

    def __init__(self, path, split, n_frames, files, file_index, local_index, start, trajectory, channels, shape, field_names):
        self.path = path
        self.split = split
        self.n_frames = int(n_frames)
        self._files = tuple(files)  # of _FileLayout
        # int32 keeps the window table (pickled to every DataLoader worker) small
        self._file = np.asarray(file_index, dtype=np.int32)  # file of each window
        self._local = np.asarray(local_index, dtype=np.int32)  # trajectory within its file
        self._start = np.asarray(start, dtype=np.int32)  # first frame
        self._trajectory = np.asarray(trajectory, dtype=np.int32)  # global trajectory id (groups)
        self._shape = tuple(int(s) for s in shape)
        self.field_names = list(field_names)
        self._plan = self._make_plan(channels)
        # frames between windows below which one read covers both: reading a chunk reads all of it
        self._gap = np.array(
            [max([self.n_frames] + [lay.fields[p].chunk_frames for p, *_ in self._plan]) for lay in self._files], dtype=np.int64
        )
        self._reset_handles()

    def _make_plan(self, channels):
        """Per field of the files: which of its components go to which output channels."""
        fields = self._files[0].fields
        n_all = sum(len(f.channels) for f in fields)
        channels = np.arange(n_all) if channels is None else np.asarray(channels, dtype=np.int64)
        plan, offset = [], 0
        for pos, f in enumerate(fields):
            k = len(f.channels)
            out_ch = np.flatnonzero((channels >= offset) & (channels < offset + k))
            if out_ch.size:
                comp = channels[out_ch] - offset
                contiguous = np.array_equal(comp, np.arange(k)) and np.array_equal(out_ch, np.arange(out_ch[0], out_ch[0] + k))
                out = slice(int(out_ch[0]), int(out_ch[0]) + k) if contiguous else out_ch
                plan.append((pos, k, None if contiguous else comp, out))
            offset += k
        # one field giving every output channel in its own order: a lone window is read straight
        # into the batch array
        self._direct = len(plan) == 1 and plan[0][2] is None and plan[0][1] == len(channels)
        return plan

    # process-local reader state -----------------------------------------------------------------
    def _reset_handles(self, close_inherited=False):
        if close_inherited:  # after fork: the descriptors are this process' copies; HDF5 state is not ours
            for h in getattr(self, "_handles", {}).values():
                h.close_descriptor()
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._handles = OrderedDict()  # file index -> _OpenFile

    def _check_process(self):
        if self._pid != os.getpid():  # forked: inherited handles must not be used here
            self._reset_handles(close_inherited=True)

    def _handle(self, fi):
        h = self._handles.get(fi)
        if h is not None:
            self._handles.move_to_end(fi)
            return h
        self._handles[fi] = h = _OpenFile(self._files[fi])
        while len(self._handles) > _MAX_OPEN_FILES:
            self._handles.popitem(last=False)[1].close()
        return h

    @property
    def open_files(self):
        if self._pid != os.getpid():
            return []
        return [self._files[fi].path for fi in self._handles]

    def close(self):
        """Close the HDF5 files this process holds open (they reopen on the next read)."""
        self._check_process()
        with self._lock:
            for h in self._handles.values():
                h.close()
            self._handles.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # array-like protocol ------------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def dtype(self):
        return np.dtype(np.float32)

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def size(self):
        return int(np.prod(self._shape))

    @property
    def nbytes(self):
        return self.size * 4

    @property
    def files(self):
        return tuple(f.path for f in self._files)

    @property
    def groups(self):
        return self._trajectory.astype(np.int64)

    def __len__(self):
        return self._shape[0]

    def __repr__(self):
        return f"LazyWindows(path={self.path!r}, split={self.split!r}, shape={self._shape})"

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype=None, copy=None):
        if copy is False:
            raise ValueError("LazyWindows reads from disk; a copy cannot be avoided")
        out = self._read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype, copy=False)

    def _indices(self, key):
        """First-axis key -> int64 array of window indices in [0, n)."""
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        k = np.asarray(key)
        if k.dtype == bool:
            if k.shape != (n,):
                raise IndexError(f"boolean index of shape {k.shape} does not match {n} windows")
            return np.flatnonzero(k)
        if np.issubdtype(k.dtype, np.integer) or (k.size == 0 and k.dtype == np.float64):
            k = k.astype(np.int64)
            if k.ndim != 1:
                raise IndexError(f"integer index arrays must be 1-D, got shape {k.shape}")
            if k.size and (k.min() < -n or k.max() >= n):
                raise IndexError(f"index out of bounds for LazyWindows with {n} windows")
            return k % n if n else k
        raise TypeError(f"LazyWindows indices must be ints, slices, integer arrays or boolean masks, got {key!r}")

    def __getitem__(self, key):
        rest = ()
        if isinstance(key, tuple):
            if not key:
                key = slice(None)
            else:
                key, rest = key[0], tuple(key[1:])
        if key is Ellipsis:
            return self._read(np.arange(len(self)))[(Ellipsis, *rest)]
        if key is None:
            raise TypeError("LazyWindows does not support np.newaxis on the first axis")
        n = len(self)
        if isinstance(key, (numbers.Integral, np.integer)) and not isinstance(key, (bool, np.bool_)):
            i = int(key)
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for LazyWindows with {n} windows")
            out = self._read(np.array([i % n]))[0]
            return out[rest] if rest else out
        out = self._read(self._indices(key))
        return out[(slice(None), *rest)] if rest else out

    # batches, views, files ----------------------------------------------------------------------
    def read(self, indices, out=None):
        """Read the windows ``indices`` as one float32 array, in the order given.

        The windows are read in sorted order, grouped by file and trajectory, with one read per
        field for each run of nearby windows of a trajectory; duplicates are read once per run.
        Equivalent to ``X[indices]`` for an integer array.

        Parameters
        ----------
        indices : array-like of int
            Window indices (negative ones count from the end), any order, repeats allowed.
        out : ndarray of float32, optional
            C-contiguous array of shape ``(len(indices), n_frames, *space, n_channels)`` to read
            into, e.g. the numpy view of a pinned torch tensor for non-blocking copies to a GPU.

        Returns
        -------
        windows : ndarray of float32, shape ``(len(indices), n_frames, *space, n_channels)``
            ``out`` when given.
        """
        k = np.asarray(indices)
        if k.ndim != 1 or not (np.issubdtype(k.dtype, np.integer) or k.size == 0):
            raise TypeError(f"LazyWindows.read expects a 1-D array of integer indices, got {indices!r}")
        idx = self._indices(k.astype(np.int64))
        self._check_out(out, (len(idx), *self._shape[1:]))
        return self._read(idx, out)

    def read_frames(self, indices, offsets, length, out=None):
        """Read ``length`` consecutive frames of each window: crops in time, read in one batch.

        Row ``k`` of the result holds frames ``offsets[k] : offsets[k] + length`` of window
        ``indices[k]`` (counted from the window's first frame), so only those frames are read.
        For example, a training sampler that draws a random sub-window of ``length`` frames from
        each of a batch of windows reads ``length / n_frames`` of what :meth:`read` would.

        Parameters
        ----------
        indices : array-like of int
            Window indices, any order, repeats allowed.
        offsets : array-like of int
            First frame within each window, ``0 <= offsets[k] <= n_frames - length``; one per index.
        length : int
            Frames per crop, ``1 <= length <= n_frames``.
        out : ndarray of float32, optional
            C-contiguous array of shape ``(len(indices), length, *space, n_channels)`` to read into.

        Returns
        -------
        crops : ndarray of float32, shape ``(len(indices), length, *space, n_channels)``

        Examples
        --------
        >>> import tempfile
        >>> import numpy as np
        >>> from sklearn.utils import Bunch
        >>> from skphys.datasets import write_well, load_well
        >>> data = np.arange(2 * 8 * 4, dtype=np.float32).reshape(2, 8, 4, 1)
        >>> bunch = Bunch(data=data, target=np.zeros((2, 1)), target_names=["a"], field_names=["u"],
        ...               time=np.arange(8.0), coords=(np.arange(4.0),), dim_names=("x",),
        ...               boundary_conditions={"x": "periodic"}, dt=1.0)
        >>> X = load_well(write_well(bunch, tempfile.mkdtemp(), "ramp"), n_frames=8, lazy=True).data
        >>> X.read_frames([1, 0], offsets=[5, 2], length=3)[:, :, 0, 0]   # frames 5-7 and 2-4
        array([[52., 56., 60.],
               [ 8., 12., 16.]], dtype=float32)
        """
        k = np.asarray(indices)
        if k.ndim != 1 or not (np.issubdtype(k.dtype, np.integer) or k.size == 0):
            raise TypeError(f"LazyWindows.read_frames expects a 1-D array of integer indices, got {indices!r}")
        idx = self._indices(k.astype(np.int64))
        if not isinstance(length, (numbers.Integral, np.integer)) or isinstance(length, (bool, np.bool_)):
            raise TypeError(f"LazyWindows.read_frames: length must be an int, got {length!r}")
        if not 1 <= length <= self.n_frames:
            raise ValueError(f"LazyWindows.read_frames: length must be in [1, n_frames={self.n_frames}], got {length}")
        off = np.asarray(offsets)
        if off.shape != idx.shape or not (np.issubdtype(off.dtype, np.integer) or off.size == 0):
            raise ValueError(f"LazyWindows.read_frames: offsets must be {len(idx)} integers (one per index), got shape {off.shape}")
        off = off.astype(np.int64)
        if off.size and (off.min() < 0 or off.max() > self.n_frames - length):
            raise ValueError(
                f"LazyWindows.read_frames: offsets must be in [0, n_frames - length = {self.n_frames - length}], "
                f"got {off.min()}..{off.max()}"
            )
        self._check_out(out, (len(idx), int(length), *self._shape[2:]))
        return self._read(idx, out, off, int(length))

    @staticmethod
    def _check_out(out, shape):
        if out is None:
            return
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape or not out.flags.c_contiguous or not out.flags.writeable:
            got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}"
            raise ValueError(f"LazyWindows: out must be a writable C-contiguous float32 array of shape {shape}, got {got}")

    def __getitems__(self, indices):
        """Batched fetch for ``torch.utils.data.DataLoader``: one sorted :meth:`read` per batch
        (a list of windows, which the default collate stacks)."""
        return list(self.read(np.asarray(indices, dtype=np.int64)))

    def file_of(self, indices=None):
        """Index into :attr:`files` of the file each window ``indices`` (default: all) lives in."""
        idx = np.arange(len(self)) if indices is None else self._indices(np.asarray(indices))
        return self._file[idx].astype(np.int64)

    def subset(self, indices):
        """A ``LazyWindows`` of the windows ``indices`` (in that order), without reading anything.

        It shares nothing process-local with ``self``: it opens only the files its windows live
        in, when it first reads them. Use it with :func:`shard_indices` to give each rank of a
        distributed job its own shard.
        """
        idx = self._indices(indices)
        view = object.__new__(LazyWindows)
        view.__dict__.update(self.__getstate__())
        view._file, view._local, view._start, view._trajectory = (
            a[idx] for a in (self._file, self._local, self._start, self._trajectory)
        )
        view._shape = (len(idx), *self._shape[1:])
        view._reset_handles()
        return view

    # reading ------------------------------------------------------------------------------------
    def _read(self, idx, out=None, offsets=None, length=None):
        """Frames ``offsets[k] : offsets[k] + length`` (default: all) of windows ``idx[k]``."""
        idx = np.asarray(idx, dtype=np.int64)
        nf = self.n_frames if length is None else int(length)
        if out is None:
            out = np.empty((len(idx), nf, *self._shape[2:]), dtype=np.float32)
        if len(idx) == 0:
            return out
        start = self._start[idx].astype(np.int64)
        if offsets is not None:
            start += offsets
        # sort by (file, trajectory, first frame): reads of a trajectory become neighbours
        order = np.lexsort((start, self._local[idx], self._file[idx]))
        f, t, s = self._file[idx[order]], self._local[idx[order]], start[order]
        # a new run of frames starts at a new file or trajectory, or after a gap of more than
        # max(n_frames, chunk length) frames; within a run every frame is read once
        new = np.ones(len(idx), dtype=bool)
        new[1:] = (f[1:] != f[:-1]) | (t[1:] != t[:-1]) | (s[1:] > s[:-1] + nf + self._gap[f[1:]])
        runs = np.flatnonzero(new).tolist() + [len(idx)]
        f, t, s = f.tolist(), t.tolist(), s.tolist()  # Python ints: no int32 overflow in byte offsets
        self._check_process()  # before taking the lock: a fork may have copied it held
        with self._lock:
            fi, handle = None, None
            for a, b in zip(runs[:-1], runs[1:]):
                if f[a] != fi:
                    fi = f[a]
                    handle = self._handle(fi)
                self._read_run(out, handle, t[a], s[a], s[b - 1] + nf, s[a:b], order[a:b], nf)
        return out

    def _read_run(self, out, handle, ti, r0, r1, starts, pos, nf):
        """Frames ``r0:r1`` of trajectory ``ti``, one read per field, cut into pieces of ``nf``
        frames starting at ``starts`` (into ``out[pos]``)."""
        space = self._shape[2:-1]
        for p, k, comp, dest in self._plan:
            if self._direct and len(pos) == 1 and r1 - r0 == nf:
                handle.read(p, ti, r0, r1, out[pos[0]])  # straight into the batch
                continue
            block = np.empty((r1 - r0, *space, k), dtype=np.float32)
            handle.read(p, ti, r0, r1, block)
            if comp is not None:
                block = block[..., comp]
            for st, j in zip(starts, pos):
                o = st - r0
                out[j][..., dest] = block[o : o + nf]  # out[j] is a view

    # pickling -----------------------------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        for k in ("_handles", "_lock", "_pid"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset_handles()
