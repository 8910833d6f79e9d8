"""Read and write The Well's HDF5 format.

- :func:`write_well` writes a simulator :class:`~sklearn.utils.Bunch` as a The Well dataset
  (``<root>/datasets/<name>/data/<split>/*.hdf5`` plus ``<root>/datasets/<name>/stats.yaml``) that
  ``the_well.data.WellDataset`` opens.
- :func:`load_well` reads windows of consecutive frames from a The Well dataset (a real one or one
  written by :func:`write_well`) through ``the_well.data.WellDataset``, as ``X`` (channels-last) and
  ``y`` (the constant scalars, i.e. the physical parameters).
- :class:`LazyWindows` is the array-like that ``load_well(..., lazy=True)`` returns: it reads
  windows on demand, so scikit-learn's splitters and skphys' estimators work on datasets larger than
  memory.

See ``docs/the_well.md`` for the file layout and the known quirks of the published datasets.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import numbers
import os
import re
import tempfile
from collections.abc import Mapping

import h5py
import numpy as np
import yaml
from sklearn.utils import Bunch

__all__ = ["write_well", "load_well", "LazyWindows"]

_BC_TYPES = ("periodic", "wall", "open")
_REQUIRED_KEYS = (
    "data",
    "target",
    "target_names",
    "field_names",
    "time",
    "coords",
    "dim_names",
    "boundary_conditions",
    "dt",
)
_REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")
# Names The Well's published files use under the wrong label, per dataset: {dataset: {stored: true}}.
_SCALAR_RENAMES = {"shear_flow": {"Rayleigh": "Reynolds"}}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


# --------------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------------


def _check_name(value, what):
    if not isinstance(value, str) or not value or not _NAME_RE.match(value) or value in (".", ".."):
        raise ValueError(f"{what} must be a non-empty string of letters, digits and '_.+-', got {value!r}")
    return value


def _validate_bunch(bunch):
    """Check a simulator Bunch against the data contract; return normalized pieces."""
    if not isinstance(bunch, Mapping):
        raise TypeError(f"write_well expects a Bunch (mapping) from a simulator, got {type(bunch).__name__}")
    missing = [k for k in _REQUIRED_KEYS if k not in bunch]
    if missing:
        raise ValueError(f"write_well: the Bunch lacks the key(s) {missing}; required: {list(_REQUIRED_KEYS)}")

    dim_names = tuple(bunch["dim_names"])
    n_space = len(dim_names)
    if n_space not in (1, 2, 3) or not all(isinstance(d, str) and d for d in dim_names):
        raise ValueError(f"write_well: dim_names must be 1 to 3 axis names, got {bunch['dim_names']!r}")
    if len(set(dim_names)) != n_space or "time" in dim_names:
        raise ValueError(f"write_well: dim_names must be distinct and not 'time', got {dim_names!r}")

    X = bunch["data"]
    if isinstance(X, np.ndarray):
        pass
    elif hasattr(X, "__array__"):
        X = np.asarray(X)
    else:
        raise TypeError(f"write_well: data must be an array, got {type(X).__name__}")
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise TypeError(f"write_well: data must be real and numeric, got dtype {X.dtype}")
    if X.ndim != n_space + 3:
        raise ValueError(
            f"write_well: data must have shape (n_trajectories, n_frames, {', '.join(dim_names)}, n_channels) "
            f"({n_space + 3} dimensions for dim_names={dim_names}), got shape {X.shape}"
        )
    n, T = X.shape[:2]
    space = X.shape[2:-1]
    C = X.shape[-1]
    if n < 1:
        raise ValueError(f"write_well: data holds no trajectories (shape {X.shape})")
    if T < 2:
        raise ValueError(f"write_well: trajectories need at least 2 frames, got {T} (shape {X.shape})")
    if C < 1 or min(space) < 1:
        raise ValueError(f"write_well: data has an empty axis (shape {X.shape})")

    field_names = list(bunch["field_names"])
    if len(field_names) != C:
        raise ValueError(f"write_well: {len(field_names)} field_names {field_names} for {C} channels in data")
    for f in field_names:
        if not isinstance(f, str) or not f or "/" in f:
            raise ValueError(f"write_well: field names must be non-empty strings without '/', got {f!r}")
    if len(set(field_names)) != C:
        raise ValueError(f"write_well: field_names has duplicates: {field_names}")

    y = np.asarray(bunch["target"])
    target_names = list(bunch["target_names"])
    if y.ndim == 1 and len(target_names) == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"write_well: target must have shape (n_trajectories={n}, n_params), got {y.shape}")
    if y.shape[1] != len(target_names):
        raise ValueError(f"write_well: {len(target_names)} target_names {target_names} for {y.shape[1]} target columns")
    if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
        raise TypeError(f"write_well: target must be numeric, got dtype {y.dtype}")
    y = y.astype(y.dtype if np.issubdtype(y.dtype, np.floating) else np.float64)
    if not np.isfinite(y).all():
        raise ValueError("write_well: target contains NaN or infinite values")
    reserved = {"dataset_name", "grid_type", "n_spatial_dims", "n_trajectories", "simulation_parameters"}
    for t in target_names:
        if not isinstance(t, str) or not t or "/" in t or t in reserved or t.startswith("skphys_"):
            raise ValueError(f"write_well: invalid target name {t!r}")
    if len(set(target_names)) != len(target_names):
        raise ValueError(f"write_well: target_names has duplicates: {target_names}")

    time = np.asarray(bunch["time"], dtype=np.float64)
    if time.shape != (T,):
        raise ValueError(f"write_well: time must be 1-D with one entry per frame ({T}), got shape {time.shape}")
    if not np.isfinite(time).all() or np.any(np.diff(time) <= 0):
        raise ValueError("write_well: time must be finite and strictly increasing")

    coords = tuple(bunch["coords"])
    if len(coords) != n_space:
        raise ValueError(f"write_well: coords must hold {n_space} arrays (one per axis {dim_names}), got {len(coords)}")
    coords = tuple(np.asarray(c, dtype=np.float64) for c in coords)
    for d, c, s in zip(dim_names, coords, space):
        if c.shape != (s,):
            raise ValueError(f"write_well: coords for axis {d!r} must have shape ({s},), got {c.shape}")
        if not np.isfinite(c).all():
            raise ValueError(f"write_well: coords for axis {d!r} contain NaN or infinite values")

    bcs = dict(bunch["boundary_conditions"])
    if set(bcs) != set(dim_names):
        raise ValueError(f"write_well: boundary_conditions must have one entry per axis {dim_names}, got {sorted(bcs)}")
    for d, bc in bcs.items():
        if not isinstance(bc, str) or bc.lower() not in _BC_TYPES:
            raise ValueError(f"write_well: boundary condition {bc!r} for axis {d!r} is not one of {_BC_TYPES}")

    dt = bunch["dt"]
    if not isinstance(dt, numbers.Real) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"write_well: dt must be a positive number, got {dt!r}")

    return Bunch(
        X=X,
        y=y,
        field_names=field_names,
        target_names=target_names,
        time=time,
        coords=coords,
        dim_names=dim_names,
        bcs={d: bcs[d].lower() for d in dim_names},
        dt=float(dt),
        descr=str(bunch.get("DESCR", "") or ""),
    )


def _group_fields(field_names, dim_names):
    """Group channels into The Well's fields.

    Channels ``<base>_<d>`` for every axis ``d`` of ``dim_names`` form one vector (t1) field
    ``<base>``, its components stored in ``dim_names`` order; every other channel is a scalar (t0)
    field. Returns ``[(order, name, [channel indices])]``.
    """
    index = {f: i for i, f in enumerate(field_names)}
    used = set()
    fields = []
    for f in field_names:
        if f in used:
            continue
        for d in dim_names:
            suffix = f"_{d}"
            if f.endswith(suffix) and len(f) > len(suffix):
                base = f[: -len(suffix)]
                comps = [f"{base}_{e}" for e in dim_names]
                if all(c in index and c not in used for c in comps) and base not in index:
                    fields.append((1, base, [index[c] for c in comps]))
                    used.update(comps)
                break
        if f not in used:
            fields.append((0, f, [index[f]]))
            used.add(f)
    return fields


class _RunningMoments:
    """Chan et al.'s parallel mean/variance, per component, accumulated in float64."""

    def __init__(self, n_comp):
        self.count = 0
        self.mean = np.zeros(n_comp)
        self.m2 = np.zeros(n_comp)
        self.sumsq = np.zeros(n_comp)

    def update(self, values):
        # values: (..., n_comp)
        v = np.asarray(values, dtype=np.float64).reshape(-1, values.shape[-1])
        nb = v.shape[0]
        if nb == 0:
            return
        mb = v.mean(axis=0)
        m2b = ((v - mb) ** 2).sum(axis=0)
        delta = mb - self.mean
        tot = self.count + nb
        self.mean = self.mean + delta * nb / tot
        self.m2 = self.m2 + m2b + delta**2 * self.count * nb / tot
        self.sumsq = self.sumsq + (v**2).sum(axis=0)
        self.count = tot

    def stats(self):
        std = np.sqrt(np.maximum(self.m2 / self.count, 0.0))
        rms = np.sqrt(self.sumsq / self.count)
        return self.mean, std, rms


def _field_stats(X, fields):
    """stats.yaml content: mean, std, rms of each field and of its one-frame increments."""
    chunk = max(1, 2**22 // int(np.prod(X.shape[1:-1])))  # ~32 MB of float64 per block and channel
    out = {k: {} for k in ("mean", "std", "mean_delta", "std_delta", "rms", "rms_delta")}
    for order, name, channels in fields:
        mom, dmom = _RunningMoments(len(channels)), _RunningMoments(len(channels))
        for start in range(0, X.shape[0], chunk):
            block = np.asarray(X[start : start + chunk][..., channels], dtype=np.float32)  # as stored
            mom.update(block)
            dmom.update(np.diff(block.astype(np.float64), axis=1))
        for key, (m, s, r) in (("", mom.stats()), ("_delta", dmom.stats())):
            for stat, val in (("mean", m), ("std", s), ("rms", r)):
                out[stat + key][name] = float(val[0]) if order == 0 else [float(v) for v in val]
    return out


def _str_list(values):
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


def _write_file(path, p, sl, name, fields, progress=None):
    """Write trajectories ``sl`` of the validated Bunch ``p`` to the HDF5 file ``path``."""
    X = p.X
    n_traj = sl.stop - sl.start
    with h5py.File(path, "w") as f:
        f.attrs["dataset_name"] = name
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = np.int64(len(p.dim_names))
        f.attrs["n_trajectories"] = np.int64(n_traj)
        f.attrs["simulation_parameters"] = _str_list(p.target_names)
        for j, t in enumerate(p.target_names):
            f.attrs[t] = p.y[sl, j]
        f.attrs["skphys_field_names"] = _str_list(p.field_names)
        f.attrs["skphys_dt"] = p.dt
        f.attrs["skphys_description"] = p.descr

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = _str_list(p.dim_names)
        t = dims.create_dataset("time", data=p.time)
        t.attrs["sample_varying"] = False
        t.attrs["time_varying"] = True
        for d, c in zip(p.dim_names, p.coords):
            ds = dims.create_dataset(d, data=c)
            ds.attrs["sample_varying"] = False
            ds.attrs["time_varying"] = False

        bcg = f.create_group("boundary_conditions")
        for d, c in zip(p.dim_names, p.coords):
            bc = p.bcs[d]
            g = bcg.create_group(f"{d}_{bc}")
            g.attrs["bc_type"] = bc.upper()
            g.attrs["associated_dims"] = _str_list([d])
            g.attrs["associated_fields"] = _str_list([])
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(len(c), dtype=bool)
            mask[0] = mask[-1] = True
            g.create_dataset("mask", data=mask)

        sc = f.create_group("scalars")
        sc.attrs["field_names"] = _str_list(p.target_names)
        for j, tname in enumerate(p.target_names):
            ds = sc.create_dataset(tname, data=p.y[sl, j])
            ds.attrs["sample_varying"] = True
            ds.attrs["time_varying"] = False

        groups = {i: f.create_group(f"t{i}_fields") for i in range(3)}
        for i in range(3):
            groups[i].attrs["field_names"] = _str_list([fname for o, fname, _ in fields if o == i])
        space = X.shape[2:-1]
        dsets = []
        for order, fname, channels in fields:
            shape = (n_traj, X.shape[1], *space) + ((len(channels),) if order == 1 else ())
            ds = groups[order].create_dataset(fname, shape=shape, dtype=np.float32)
            ds.attrs["dim_varying"] = np.ones(len(p.dim_names), dtype=bool)
            ds.attrs["sample_varying"] = True
            ds.attrs["time_varying"] = True
            dsets.append((ds, order, channels))
        for k in range(n_traj):
            traj = np.asarray(X[sl.start + k], dtype=np.float32)
            if not np.isfinite(traj).all():
                raise ValueError(f"write_well: trajectory {sl.start + k} contains NaN or infinite values")
            for ds, order, channels in dsets:
                ds[k] = traj[..., channels[0]] if order == 0 else traj[..., channels]
            if progress is not None:
                progress.update(1)


def _atomic_yaml(path, content):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".stats.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(content, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_well(bunch, root, name, split="train", n_trajectories_per_file=None, overwrite=False, progress=False):
    """Write simulated trajectories as a The Well dataset.

    Writes ``<root>/datasets/<name>/data/<split>/<name>_<split>_<k>.hdf5`` in The Well's HDF5 layout
    (one trajectory per sample, the physical parameters as per-trajectory constant scalars) and
    ``<root>/datasets/<name>/stats.yaml`` (``mean``, ``std``, ``mean_delta``, ``std_delta``, ``rms``,
    ``rms_delta`` per field, read by ``WellDataset(use_normalization=True)``). ``stats.yaml`` comes
    from the ``"train"`` split; another split only writes it when none exists yet.

    Channels named ``<base>_<axis>`` for every axis (e.g. ``velocity_x`` and ``velocity_y`` of a 2-D
    system) are stored as one vector field ``<base>`` in ``t1_fields``; all other channels are
    scalar fields in ``t0_fields``. The original channel order is kept in the root attribute
    ``skphys_field_names`` and :func:`load_well` restores it.

    Every file is written to a temporary file in the same directory and moved into place with
    :func:`os.replace` once all files are complete; on any error the temporary files are removed and
    existing files are left untouched.

    Parameters
    ----------
    bunch : Bunch
        A simulator's output: ``data`` ``(n, T, *space, C)``, ``target`` ``(n, n_params)``,
        ``target_names``, ``field_names``, ``time``, ``coords``, ``dim_names``,
        ``boundary_conditions``, ``dt`` and optionally ``DESCR``.
    root : str or path-like
        Base directory; the dataset goes to ``<root>/datasets/<name>``.
    name : str
        Dataset name (letters, digits, ``_.+-``), stored as the ``dataset_name`` attribute.
    split : str, default="train"
        Split directory name (``"train"``, ``"valid"``, ``"test"`` or another name).
    n_trajectories_per_file : int, default=None
        Trajectories per HDF5 file; None writes a single file.
    overwrite : bool, default=False
        Replace the split's existing HDF5 files. Without it, existing files raise
        ``FileExistsError``.
    progress : bool, default=False
        Show a tqdm progress bar over the trajectories written.

    Returns
    -------
    path : str
        The dataset directory ``<root>/datasets/<name>``, to pass to :func:`load_well` or to
        ``the_well.data.WellDataset(path=...)``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sklearn.utils import Bunch
    >>> from skphys.datasets import write_well, load_well
    >>> x = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    >>> t = np.arange(8) * 0.1
    >>> c = np.array([[0.5], [1.0]])                      # wave speeds
    >>> u = np.sin(x[None, None, :] - c[:, :, None] * t[None, :, None])[..., None]
    >>> bunch = Bunch(data=u.astype(np.float32), target=c, target_names=["c"], field_names=["u"],
    ...               time=t, coords=(x,), dim_names=("x",), boundary_conditions={"x": "periodic"},
    ...               dt=0.1, DESCR="travelling sine waves")
    >>> root = tempfile.mkdtemp()
    >>> path = write_well(bunch, root, "waves")
    >>> X, y = load_well(path, n_frames=4, return_X_y=True)
    >>> X.shape, y.shape
    ((4, 4, 16, 1), (4, 1))
    """
    p = _validate_bunch(bunch)
    _check_name(name, "name")
    _check_name(split, "split")
    if n_trajectories_per_file is None:
        per_file = p.X.shape[0]
    elif isinstance(n_trajectories_per_file, numbers.Integral) and not isinstance(n_trajectories_per_file, bool):
        if n_trajectories_per_file < 1:
            raise ValueError(f"n_trajectories_per_file must be >= 1, got {n_trajectories_per_file}")
        per_file = int(n_trajectories_per_file)
    else:
        raise TypeError(f"n_trajectories_per_file must be None or an int, got {n_trajectories_per_file!r}")
    if not isinstance(overwrite, bool):
        raise TypeError(f"overwrite must be a bool, got {overwrite!r}")

    dataset_dir = os.path.join(os.fspath(root), "datasets", name)
    split_dir = os.path.join(dataset_dir, "data", split)
    existing = sorted(glob.glob(os.path.join(split_dir, "*.hdf5")) + glob.glob(os.path.join(split_dir, "*.h5")))
    if existing and not overwrite:
        raise FileExistsError(
            f"write_well: {split_dir} already holds {len(existing)} HDF5 file(s) (e.g. {os.path.basename(existing[0])}); "
            "pass overwrite=True to replace them"
        )
    stats_path = os.path.join(dataset_dir, "stats.yaml")
    write_stats = split == "train" or not os.path.exists(stats_path)

    # Directories we create are removed again if writing fails.
    created = []
    d = split_dir
    while not os.path.isdir(d):
        created.append(d)
        d = os.path.dirname(d)
    os.makedirs(split_dir, exist_ok=True)

    fields = _group_fields(p.field_names, p.dim_names)
    n = p.X.shape[0]
    n_files = -(-n // per_file)
    width = max(3, len(str(n_files - 1)))
    final = [os.path.join(split_dir, f"{name}_{split}_{k:0{width}d}.hdf5") for k in range(n_files)]
    temps = []
    bar = None
    try:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n, desc=f"writing {name}/{split}", unit="traj")
        for k in range(n_files):
            fd, tmp = tempfile.mkstemp(dir=split_dir, prefix=f".{os.path.basename(final[k])}.", suffix=".tmp")
            os.close(fd)
            temps.append(tmp)
            _write_file(tmp, p, slice(k * per_file, min(n, (k + 1) * per_file)), name, fields, bar)
        stats = _field_stats(p.X, fields) if write_stats else None
        for tmp, dst in zip(temps, final):
            os.replace(tmp, dst)
        temps = []
        for old in existing:
            if old not in final:
                os.remove(old)
        if stats is not None:
            _atomic_yaml(stats_path, stats)
    except BaseException:
        for tmp in temps:
            with contextlib.suppress(OSError):
                os.remove(tmp)
        for d in created:
            with contextlib.suppress(OSError):
                os.rmdir(d)  # only succeeds when empty
        raise
    finally:
        if bar is not None:
            bar.close()
    return dataset_dir


# --------------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------------


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


def _attr_str(value):
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _attr_list(value):
    if isinstance(value, (str, bytes)):
        return [_attr_str(value)]
    return [_attr_str(v) for v in np.atleast_1d(value)]


def _scan_file(path, n_frames):
    """Read one file's metadata with h5py; raise errors that name the file."""
    base = os.path.basename(path)
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"load_well: cannot open {path}: not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    try:
        with fh as f:
            missing = [g for g in _REQUIRED_GROUPS if g not in f]
            if missing:
                raise ValueError(f"load_well: {path} is not in The Well's format: missing group(s) {missing}")
            for a in ("dataset_name", "n_trajectories"):
                if a not in f.attrs:
                    raise ValueError(f"load_well: {path} is not in The Well's format: missing root attribute {a!r}")
            dims = f["dimensions"]
            spatial_dims = _attr_list(dims.attrs["spatial_dims"])
            time_ds = dims["time"]
            time = np.asarray(time_ds[()], dtype=np.float64)
            n_traj = int(f.attrs["n_trajectories"])
            T = time.shape[-1]
            if T < n_frames:
                raise ValueError(
                    f"load_well: n_frames={n_frames} is longer than the {T} frames of the trajectories in {base}"
                )
            coords = []
            for d in spatial_dims:
                c = np.asarray(dims[d][()], dtype=np.float64)
                coords.append(c[0] if c.ndim > 1 else c)
            bcs = {}
            for key in f["boundary_conditions"]:
                g = f["boundary_conditions"][key]
                for d in _attr_list(g.attrs["associated_dims"]):
                    bcs.setdefault(d, set()).add(_attr_str(g.attrs["bc_type"]).lower())
            scalars = {}
            for s in _attr_list(f["scalars"].attrs["field_names"]):
                ds = f["scalars"][s]
                if bool(ds.attrs["time_varying"]):
                    continue
                val = np.asarray(ds[()], dtype=np.float64)
                scalars[s] = val if bool(ds.attrs["sample_varying"]) else np.full(n_traj, float(val.reshape(-1)[0]))
            components = {}
            for i in range(3):
                group = f[f"t{i}_fields"]
                for name in _attr_list(group.attrs["field_names"]):
                    if bool(group[name].attrs["time_varying"]):
                        suffixes = ["".join(p) for p in itertools.product(spatial_dims, repeat=i)]
                        components[name] = [f"{name}_{s}" if s else name for s in suffixes]
            order = _attr_list(f.attrs["skphys_field_names"]) if "skphys_field_names" in f.attrs else None
            return Bunch(
                path=path,
                dataset_name=_attr_str(f.attrs["dataset_name"]),
                n_traj=n_traj,
                T=T,
                time=time,
                spatial_dims=spatial_dims,
                coords=tuple(coords),
                bcs=bcs,
                scalars=scalars,
                skphys_order=order,
                components=components,
                description=_attr_str(f.attrs["skphys_description"]) if "skphys_description" in f.attrs else "",
                dt=float(f.attrs["skphys_dt"]) if "skphys_dt" in f.attrs else None,
            )
    except (KeyError, OSError) as exc:
        raise ValueError(f"load_well: {path} is not a valid The Well file (corrupt or truncated?): {exc!r}") from exc


def _open_well_dataset(dataset_dir, split, n_frames):
    from the_well.data import WellDataset

    try:
        return WellDataset(
            path=dataset_dir,
            well_split_name=split,
            n_steps_input=n_frames,
            n_steps_output=0,
            min_dt_stride=1,
            max_dt_stride=1,
            use_normalization=False,
            return_grid=False,
            boundary_return_type=None,
            cache_small=False,
        )
    except (AssertionError, KeyError, OSError) as exc:
        raise ValueError(f"load_well: the_well could not open {dataset_dir} split {split!r}: {exc!r}") from exc


class LazyWindows:
    """Windows of a The Well dataset, read on demand (an array-like for ``X``).

    Behaves like a read-only float32 array of shape ``(n_windows, n_frames, *space, n_channels)``:
    ``shape``, ``dtype``, ``ndim``, ``len``, and ``__getitem__`` with an int, a slice, an integer
    array or list, or a boolean mask on the first axis (optionally followed by indices on the other
    axes, e.g. ``X[idx, ...]``). Each requested window is read through
    ``the_well.data.WellDataset``; nothing is cached, so memory does not grow with the dataset.
    ``np.asarray(X)`` reads every window (for small datasets only). Pickling stores the path and the
    window table; the files are reopened on first read after unpickling.

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
    >>> path = write_well(bunch, tempfile.mkdtemp(), "noise")
    >>> X, y = load_well(path, n_frames=4, lazy=True, return_X_y=True)
    >>> X.shape
    (12, 4, 16, 1)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    >>> X_train.shape, X_test.shape
    ((9, 4, 16, 1), (3, 4, 16, 1))
    """

    def __init__(self, path, split, n_frames, well_index, trajectory, start, channels, shape, field_names, layout):
        self.path = path
        self.split = split
        self.n_frames = int(n_frames)
        self._well_index = np.asarray(well_index, dtype=np.int64)  # WellDataset index of each window
        self._trajectory = np.asarray(trajectory, dtype=np.int64)  # trajectory index (in file order)
        self._start = np.asarray(start, dtype=np.int64)  # first frame of each window
        self._channels = None if channels is None else np.asarray(channels, dtype=np.int64)
        self._shape = tuple(int(s) for s in shape)
        self.field_names = list(field_names)
        self._layout = layout  # (n_trajectories_per_file, n_steps_per_trajectory), checked on reopen
        steps = set(layout[1])
        self._n_steps = steps.pop() if len(steps) == 1 else None  # trajectory length, if shared by all files
        self._dataset = None  # WellDataset with one sample per window
        self._trajectories = None  # WellDataset with one sample per whole trajectory

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
            out = self._read_one(i % n)
            return out[rest] if rest else out
        if isinstance(key, slice):
            idx = np.arange(n)[key]
        else:
            k = np.asarray(key)
            if k.dtype == bool:
                if k.shape != (n,):
                    raise IndexError(f"boolean index of shape {k.shape} does not match {n} windows")
                idx = np.flatnonzero(k)
            elif np.issubdtype(k.dtype, np.integer) or (k.size == 0 and k.dtype == np.float64):
                k = k.astype(np.int64)
                if k.ndim != 1:
                    raise IndexError(f"integer index arrays must be 1-D, got shape {k.shape}")
                if k.size and (k.min() < -n or k.max() >= n):
                    raise IndexError(f"index out of bounds for LazyWindows with {n} windows")
                idx = k % n if n else k
            else:
                raise TypeError(f"LazyWindows indices must be ints, slices, integer arrays or boolean masks, got {key!r}")
        out = self._read(idx)
        return out[(slice(None), *rest)] if rest else out

    # reading ------------------------------------------------------------------------------------
    def _open(self, n_steps):
        if not os.path.isdir(os.path.join(self.path, "data", self.split)):
            raise FileNotFoundError(f"LazyWindows: the dataset {self.path} split {self.split!r} no longer exists")
        ds = _open_well_dataset(self.path, self.split, n_steps)
        layout = (list(map(int, ds.n_trajectories_per_file)), list(map(int, ds.n_steps_per_trajectory)))
        if layout != self._layout:
            raise ValueError(f"LazyWindows: the files of {self.path} split {self.split!r} changed since they were indexed")
        return ds

    def _sample(self, ds, j, what):
        try:
            arr = ds[int(j)]["input_fields"].numpy()
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            f = int(np.searchsorted(ds.file_index_offsets, j, side="right") - 1)
            raise ValueError(f"LazyWindows: could not read {what} from {ds.files_paths[f]}: {exc!r}") from exc
        if self._channels is not None:
            arr = arr[..., self._channels]
        return arr

    def _read_one(self, i):
        if self._dataset is None:
            self._dataset = self._open(self.n_frames)
        return np.ascontiguousarray(self._sample(self._dataset, self._well_index[i], f"window {i}"), dtype=np.float32)

    def _read(self, idx):
        """Read windows ``idx``. Where a batch asks for at least half of a trajectory's frames, the
        whole trajectory is read once through a second WellDataset (one sample per trajectory) and
        cut into windows: The Well's per-sample overhead (milliseconds of HDF5 metadata reads)
        then is paid per trajectory instead of per window."""
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *self._shape[1:]), dtype=np.float32)
        if len(idx) == 0:
            return out
        traj = self._trajectory[idx]
        whole = np.zeros(len(idx), dtype=bool)
        if self._n_steps is not None and self._n_steps > self.n_frames:
            _, inverse, counts = np.unique(traj, return_inverse=True, return_counts=True)
            whole = (2 * counts * self.n_frames >= self._n_steps)[inverse]
        for j in np.flatnonzero(~whole):
            out[j] = self._read_one(int(idx[j]))
        if whole.any():
            if self._trajectories is None:
                self._trajectories = self._open(self._n_steps)
            for t in np.unique(traj[whole]):
                full = self._sample(self._trajectories, t, f"trajectory {t}")
                for j in np.flatnonzero(whole & (traj == t)):
                    s = int(self._start[idx[j]])
                    out[j] = full[s : s + self.n_frames]
        return out

    # pickling -----------------------------------------------------------------------------------
    def __getstate__(self):
        state = self.__dict__.copy()
        state["_dataset"] = None
        state["_trajectories"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


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
    Reading goes through ``the_well.data.WellDataset`` (one WellDataset sample of ``n_frames``
    input steps per window). Scalar fields (``t0_fields``) and the components of vector and tensor
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
    files = sorted(glob.glob(os.path.join(split_dir, "*.h5")) + glob.glob(os.path.join(split_dir, "*.hdf5")))
    if not files:
        raise FileNotFoundError(f"load_well: no .hdf5/.h5 files in {split_dir}")
    scans = [_scan_file(f, n_frames) for f in files]

    ds = _open_well_dataset(dataset_dir, split, n_frames)
    layout = (list(map(int, ds.n_trajectories_per_file)), list(map(int, ds.n_steps_per_trajectory)))
    if [os.path.abspath(p) for p in ds.files_paths] != [os.path.abspath(s.path) for s in scans]:
        raise ValueError(f"load_well: the_well lists different files in {split_dir} than found on disk")

    # channels
    from the_well.data.utils import flatten_field_names

    well_channels = flatten_field_names(ds.metadata, include_constants=False)
    if not well_channels:
        raise ValueError(f"load_well: {split_dir} holds no time-varying fields")
    wanted = fields
    if wanted is None and scans[0].skphys_order is not None and sorted(scans[0].skphys_order) == sorted(well_channels):
        wanted = scans[0].skphys_order
    if wanted is None:
        channels, channel_names = None, list(well_channels)
    else:
        pos = {c: i for i, c in enumerate(well_channels)}
        core = scans[0].components
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
    dataset_name = ds.dataset_name
    scalar_names = list(ds.metadata.constant_scalar_names)
    renames = _SCALAR_RENAMES.get(dataset_name, {})
    target_names = [renames.get(s, s) if renames.get(s) not in scalar_names else s for s in scalar_names]

    # window table
    well_index, groups, window_starts, offsets, ys = [], [], [], [], []
    base, traj_id = 0, 0
    for f, sc in enumerate(scans):
        lacking = [s for s in scalar_names if s not in sc.scalars]
        if lacking:
            raise ValueError(f"load_well: {sc.path} lacks the constant scalar(s) {lacking} that {scans[0].path} has")
        n_w = int(ds.n_windows_per_trajectory[f])
        starts = np.arange(0, sc.T - n_frames + 1, stride)
        for i in range(sc.n_traj):
            if max_trajectories is not None and traj_id >= max_trajectories:
                break
            well_index.append(base + i * n_w + starts)
            groups.append(np.full(len(starts), traj_id))
            window_starts.append(starts)
            t = sc.time[i] if sc.time.ndim > 1 else sc.time
            offsets.append(t[starts])
            yi = np.array([sc.scalars[s][i] for s in scalar_names], dtype=np.float64)
            ys.append(np.repeat(yi[None, :], len(starts), axis=0))
            traj_id += 1
        base += sc.n_traj * n_w
    well_index = np.concatenate(well_index)
    groups = np.concatenate(groups)
    window_starts = np.concatenate(window_starts)
    time_offsets = np.concatenate(offsets)
    y = np.concatenate(ys).reshape(len(well_index), len(scalar_names))

    first = scans[0]
    t0 = first.time[0] if first.time.ndim > 1 else first.time
    time = t0[:n_frames] - t0[0]
    steps = np.diff(t0)
    dt = first.dt if first.dt is not None else float(np.median(steps)) if steps.size else float("nan")
    bcs = {}
    for d in first.spatial_dims:
        kinds = sorted(first.bcs.get(d, {"open"}))
        bcs[d] = kinds[0] if len(kinds) == 1 else "/".join(kinds)

    shape = (len(well_index), n_frames, *ds.size_tuple, len(channel_names))
    X = LazyWindows(dataset_dir, split, n_frames, well_index, groups, window_starts, channels, shape, channel_names, layout)
    X._dataset = ds
    if not lazy:
        X = X[:]

    n_traj_used = int(groups.max()) + 1 if groups.size else 0
    descr = (
        f"The Well dataset {dataset_name!r}, split {split!r} ({dataset_dir}): {len(well_index)} windows of "
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
