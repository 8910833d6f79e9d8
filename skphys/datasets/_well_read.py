"""Read windows of a The Well dataset (:func:`load_well`).

The index (which windows exist, their targets and times) is built from each file's metadata
(:func:`._well_format.scan_file`); the field data is read by :class:`._well_lazy.LazyWindows`.
"""

from __future__ import annotations

import glob
import numbers
import os

import numpy as np
from sklearn.utils import Bunch

from ._well_format import SCALAR_RENAMES, scan_file
from ._well_lazy import LazyWindows, _FileLayout

__all__ = ["load_well"]


def _resolve_dataset_dir(name_or_path, base_path):
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path must be a dataset name or a path, got {type(name_or_path).__name__}")
    target = os.fspath(name_or_path)
    if base_path is None:
        if os.path.isdir(target):
            return os.path.abspath(target)
        raise FileNotFoundError(
            f"load_well: no dataset directory {target!r}; pass a path to <root>/datasets/<name>, "
            "or a dataset name together with base_path"
        )
    tried = [os.path.join(os.fspath(base_path), "datasets", target), os.path.join(os.fspath(base_path), target)]
    for cand in tried:
        if os.path.isdir(cand):
            return os.path.abspath(cand)
    raise FileNotFoundError(f"load_well: dataset {target!r} not found; looked in {tried}")


def _check_int(value, name, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def load_well(
    name_or_path,
    split="train",
    n_frames=16,
    stride=None,
    fields=None,
    base_path=None,
    lazy=False,
    return_X_y=False,
    max_trajectories=None,
):
    """Load windows of consecutive frames from a The Well dataset.

    Works on the published The Well datasets and on datasets written by :func:`write_well`.
    Windows are read with h5py in batches (see :class:`LazyWindows`); they equal the
    ``input_fields`` of ``the_well.data.WellDataset(n_steps_input=n_frames, n_steps_output=0)``
    (the tests check this). Scalar fields (``t0_fields``) and the components of vector and tensor
    fields (``t1_fields``, ``t2_fields``, named e.g. ``velocity_x``) become channels; constant
    (time-independent) fields are left out. ``y`` holds the constant scalars, i.e. the physical
    parameters of each window's trajectory.

    Known quirk: The Well's ``shear_flow`` stores its Reynolds number under the name ``"Rayleigh"``;
    for ``dataset_name == "shear_flow"`` it is returned as ``"Reynolds"``.

    Parameters
    ----------
    name_or_path : str or path-like
        A dataset directory (``<root>/datasets/<name>``, holding ``data/<split>/``), or a dataset
        name looked up as ``<base_path>/datasets/<name>`` (or ``<base_path>/<name>``).
    split : str, default="train"
        Split directory (``"train"``, ``"valid"``, ``"test"``).
    n_frames : int, default=16
        Frames per window.
    stride : int, default=None
        Frames between the starts of consecutive windows of a trajectory; None means
        ``n_frames`` (non-overlapping windows). A trajectory of ``T`` frames gives
        ``(T - n_frames) // stride + 1`` windows.
    fields : list of str, default=None
        Channels to keep, in this order: channel names (``"velocity_x"``) or field names
        (``"velocity"`` for all its components). None keeps every channel (for files written by
        :func:`write_well`, in the original channel order).
    base_path : str or path-like, default=None
        Base directory for dataset names.
    lazy : bool, default=False
        Return ``data`` as a :class:`LazyWindows` that reads windows on demand instead of an array.
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.
    max_trajectories : int, default=None
        Use only the first ``max_trajectories`` trajectories (in file order).

    Returns
    -------
    data : Bunch
        ``data`` (float32 ``(n_windows, n_frames, *space, C)`` array or :class:`LazyWindows`),
        ``target`` (``(n_windows, n_params)`` float64), ``target_names``, ``field_names``,
        ``groups`` (trajectory index of each window, for grouped cross-validation), ``time``
        (frame times within a window, relative to its first frame), ``time_offsets`` (absolute time
        of each window's first frame), ``dim_names``, ``coords``, ``boundary_conditions``, ``dt``,
        ``dataset_name``, ``path`` and ``DESCR``.
    (X, y) : tuple
        With ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        Missing dataset or split directory, or a split without HDF5 files.
    ValueError
        Corrupt or truncated files (named), ``n_frames`` longer than the trajectories, unknown
        field names.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from skphys.datasets import write_well, load_well
    >>> rng = np.random.default_rng(0)
    >>> bunch = Bunch(data=rng.normal(size=(3, 10, 8, 4, 2)).astype(np.float32),
    ...               target=rng.uniform(size=(3, 2)), target_names=["Re", "Sc"],
    ...               field_names=["velocity_x", "velocity_y"], time=np.arange(10) * 0.5,
    ...               coords=(np.arange(8.0), np.arange(4.0)), dim_names=("y", "x"),
    ...               boundary_conditions={"y": "wall", "x": "periodic"}, dt=0.5)
    >>> path = write_well(bunch, tempfile.mkdtemp(), "flow")
    >>> ds = load_well(path, n_frames=5, stride=5)
    >>> ds.data.shape, ds.field_names, ds.groups
    ((6, 5, 8, 4, 2), ['velocity_x', 'velocity_y'], array([0, 0, 1, 1, 2, 2]))
    >>> bool(np.array_equal(ds.data[1], bunch.data[0, 5:10]))
    True
    """
    n_frames = _check_int(n_frames, "n_frames")
    stride = _check_int(stride, "stride", allow_none=True) or n_frames
    max_trajectories = _check_int(max_trajectories, "max_trajectories", allow_none=True)
    if not isinstance(split, str) or not split:
        raise TypeError(f"split must be a non-empty string, got {split!r}")
    for flag, val in (("lazy", lazy), ("return_X_y", return_X_y)):
        if not isinstance(val, (bool, np.bool_)):
            raise TypeError(f"{flag} must be a bool, got {val!r}")
    if fields is not None:
        if isinstance(fields, str):
            fields = [fields]
        fields = list(fields)
        if not fields or not all(isinstance(f, str) for f in fields):
            raise TypeError(f"fields must be None or a non-empty list of field names, got {fields!r}")

    dataset_dir = _resolve_dataset_dir(name_or_path, base_path)
    split_dir = os.path.join(dataset_dir, "data", split)
    if not os.path.isdir(split_dir):
        data_dir = os.path.join(dataset_dir, "data")
        have = sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []
        raise FileNotFoundError(f"load_well: no split {split!r} in {dataset_dir} (expected {split_dir}; available splits: {have})")
    # in the_well's WellDataset order: *.h5 and *.hdf5 files sorted together by path
    files = sorted(glob.glob(os.path.join(split_dir, "*.h5")) + glob.glob(os.path.join(split_dir, "*.hdf5")))
    if not files:
        raise FileNotFoundError(f"load_well: no .hdf5/.h5 files in {split_dir}")
    scans = [scan_file(f) for f in files]
    first = scans[0]
    for sc in scans:
        base = os.path.basename(sc.path)
        if sc.n_steps < n_frames:
            raise ValueError(f"load_well: n_frames={n_frames} is longer than the {sc.n_steps} frames of the trajectories in {base}")
        for what in ("dataset_name", "spatial_dims", "spatial_resolution", "channel_names"):
            if getattr(sc, what) != getattr(first, what):
                raise ValueError(
                    f"load_well: {sc.path} has {what} {getattr(sc, what)!r} but {first.path} has {getattr(first, what)!r}; "
                    "all files of a split must agree"
                )

    # channels
    well_channels = first.channel_names
    if not well_channels:
        raise ValueError(f"load_well: {split_dir} holds no time-varying fields")
    wanted = fields
    if wanted is None and first.skphys_field_names is not None and sorted(first.skphys_field_names) == sorted(well_channels):
        wanted = list(first.skphys_field_names)
    if wanted is None:
        channels, channel_names = None, list(well_channels)
    else:
        pos = {c: i for i, c in enumerate(well_channels)}
        core = first.components
        channel_names = []
        for f in wanted:
            if f in pos:
                channel_names.append(f)
            elif f in core:
                channel_names.extend(core[f])
            else:
                raise ValueError(f"load_well: unknown field {f!r}; available channels: {well_channels}")
        if len(set(channel_names)) != len(channel_names):
            raise ValueError(f"load_well: fields selects a channel twice: {channel_names}")
        channels = [pos[c] for c in channel_names]
        if channels == list(range(len(well_channels))):
            channels = None

    # targets
    dataset_name = first.dataset_name
    scalar_names = list(first.constant_scalars)
    renames = SCALAR_RENAMES.get(dataset_name, {})
    target_names = [renames.get(s, s) if renames.get(s) not in scalar_names else s for s in scalar_names]

    # window table
    file_index, local, groups, window_starts, offsets, ys = [], [], [], [], [], []
    traj_id = 0
    for fi, sc in enumerate(scans):
        lacking = [s for s in scalar_names if s not in sc.constant_scalars]
        if lacking:
            raise ValueError(f"load_well: {sc.path} lacks the constant scalar(s) {lacking} that {first.path} has")
        starts = np.arange(0, sc.n_steps - n_frames + 1, stride)
        for i in range(sc.n_trajectories):
            if max_trajectories is not None and traj_id >= max_trajectories:
                break
            file_index.append(np.full(len(starts), fi))
            local.append(np.full(len(starts), i))
            groups.append(np.full(len(starts), traj_id))
            window_starts.append(starts)
            offsets.append(sc.trajectory_time(i)[starts])
            yi = np.array([sc.constant_scalars[s][i] for s in scalar_names], dtype=np.float64)
            ys.append(np.repeat(yi[None, :], len(starts), axis=0))
            traj_id += 1
    file_index = np.concatenate(file_index)
    groups = np.concatenate(groups)
    window_starts = np.concatenate(window_starts)
    time_offsets = np.concatenate(offsets)
    y = np.concatenate(ys).reshape(len(groups), len(scalar_names))

    t0 = first.trajectory_time(0)
    time = t0[:n_frames] - t0[0]
    steps = np.diff(t0)
    dt = first.dt if first.dt is not None else float(np.median(steps)) if steps.size else float("nan")
    bcs = {}
    for d in first.spatial_dims:
        kinds = first.boundary_conditions.get(d, ("open",))
        bcs[d] = kinds[0] if len(kinds) == 1 else "/".join(kinds)

    layouts = [_FileLayout(sc.path, sc.n_trajectories, sc.n_steps, sc.fields) for sc in scans]
    shape = (len(groups), n_frames, *first.spatial_resolution, len(channel_names))
    X = LazyWindows(
        dataset_dir, split, n_frames, layouts, file_index, np.concatenate(local), window_starts, groups, channels, shape, channel_names
    )
    if not lazy:
        with X:
            X = X[:]

    n_traj_used = int(groups.max()) + 1 if groups.size else 0
    descr = (
        f"The Well dataset {dataset_name!r}, split {split!r} ({dataset_dir}): {len(groups)} windows of "
        f"{n_frames} frames (stride {stride}) from {n_traj_used} trajectories; channels {channel_names}; "
        f"parameters {target_names}."
    )
    if renames and any(s in renames for s in scalar_names):
        descr += " The scalar stored as " + ", ".join(f"{k!r} is returned as {v!r}" for k, v in renames.items()) + "."
    if first.description:
        descr += "\n\n" + first.description
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        target_names=target_names,
        field_names=list(channel_names),
        groups=groups,
        time=time,
        time_offsets=time_offsets,
        dim_names=tuple(first.spatial_dims),
        coords=first.coords,
        boundary_conditions=bcs,
        dt=dt,
        dataset_name=dataset_name,
        path=dataset_dir,
        DESCR=descr,
    )
