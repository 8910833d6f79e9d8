"""Write simulator output as a The Well dataset (:func:`write_well`).

The layout is described in ``docs/the_well.md``; the names and attribute helpers shared with the
reader live in :mod:`._well_format`.
"""

from __future__ import annotations

import contextlib
import glob
import numbers
import os
import tempfile
from collections.abc import Mapping

import h5py
import numpy as np
import yaml
from sklearn.utils import Bunch

from ._well_format import BC_TYPES, NAME_RE, str_array

__all__ = ["write_well"]

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


def _check_name(value, what):
    if not isinstance(value, str) or not value or not NAME_RE.match(value) or value in (".", ".."):
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
        if not isinstance(bc, str) or bc.lower() not in BC_TYPES:
            raise ValueError(f"write_well: boundary condition {bc!r} for axis {d!r} is not one of {BC_TYPES}")

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

    - Channels ``<base>_<a><b>`` for every pair of axes ``a, b`` of ``dim_names`` (e.g. ``D_xx``,
      ``D_xy``, ``D_yx``, ``D_yy``) form one rank-2 tensor (t2) field ``<base>``, stored with two
      trailing axes ``(d, d)``, components row-major in ``dim_names`` order.
    - Channels ``<base>_<a>`` for every axis ``a`` form one vector (t1) field ``<base>``, its
      components in ``dim_names`` order.
    - Every other channel is a scalar (t0) field.

    A base that is itself a channel name, or whose components are not all present, is not
    grouped. Returns ``[(order, name, [channel indices in component order])]`` in the order the
    fields first appear.
    """
    from ._well_format import component_suffixes

    index = {f: i for i, f in enumerate(field_names)}
    used = set()
    fields = []
    patterns = [(order, component_suffixes(dim_names, order)) for order in (2, 1)]
    for f in field_names:
        if f in used:
            continue
        for order, suffixes in patterns:
            match = next((s for s in suffixes if f.endswith(f"_{s}") and len(f) > len(s) + 1), None)
            if match is None:
                continue
            base = f[: -len(match) - 1]
            comps = [f"{base}_{s}" for s in suffixes]
            if base not in index and all(c in index and c not in used for c in comps):
                fields.append((order, base, [index[c] for c in comps]))
                used.update(comps)
                break
        if f not in used:
            fields.append((0, f, [index[f]]))
            used.add(f)
    names = [name for _, name, _ in fields]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"write_well: the channels {list(field_names)} give the field name(s) {dup} twice")
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
                if order == 0:
                    out[stat + key][name] = float(val[0])
                else:  # nested like the field's trailing axes, so the_well's normalization broadcasts
                    d = round(len(channels) ** (1 / order))
                    out[stat + key][name] = np.asarray(val, dtype=float).reshape((d,) * order).tolist()
    return out


def _write_file(path, p, sl, name, fields, progress=None):
    """Write trajectories ``sl`` of the validated Bunch ``p`` to the HDF5 file ``path``."""
    X = p.X
    n_traj = sl.stop - sl.start
    with h5py.File(path, "w") as f:
        f.attrs["dataset_name"] = name
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = np.int64(len(p.dim_names))
        f.attrs["n_trajectories"] = np.int64(n_traj)
        f.attrs["simulation_parameters"] = str_array(p.target_names)
        for j, t in enumerate(p.target_names):
            f.attrs[t] = p.y[sl, j]
        f.attrs["skphys_field_names"] = str_array(p.field_names)
        f.attrs["skphys_dt"] = p.dt
        f.attrs["skphys_description"] = p.descr

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = str_array(p.dim_names)
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
            g.attrs["associated_dims"] = str_array([d])
            g.attrs["associated_fields"] = str_array([])
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(len(c), dtype=bool)
            mask[0] = mask[-1] = True
            g.create_dataset("mask", data=mask)

        sc = f.create_group("scalars")
        sc.attrs["field_names"] = str_array(p.target_names)
        for j, tname in enumerate(p.target_names):
            ds = sc.create_dataset(tname, data=p.y[sl, j])
            ds.attrs["sample_varying"] = True
            ds.attrs["time_varying"] = False

        groups = {i: f.create_group(f"t{i}_fields") for i in range(3)}
        for i in range(3):
            groups[i].attrs["field_names"] = str_array([fname for o, fname, _ in fields if o == i])
        space = X.shape[2:-1]
        dsets = []
        for order, fname, channels in fields:
            shape = (n_traj, X.shape[1], *space) + (len(p.dim_names),) * order
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
                comp = traj[..., channels]
                ds[k] = comp.reshape(comp.shape[:-1] + (len(p.dim_names),) * order)
            if progress is not None:
                progress.update(1)


def _atomic_yaml(path, content):
    from ..utils import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        yaml.safe_dump(content, fh, sort_keys=True)


def write_well(bunch, root, name, split="train", n_trajectories_per_file=None, overwrite=False, progress=False):
    """Write simulated trajectories as a The Well dataset.

    Writes ``<root>/datasets/<name>/data/<split>/<name>_<split>_<k>.hdf5`` in The Well's HDF5 layout
    (one trajectory per sample, the physical parameters as per-trajectory constant scalars) and
    ``<root>/datasets/<name>/stats.yaml`` (``mean``, ``std``, ``mean_delta``, ``std_delta``, ``rms``,
    ``rms_delta`` per field, read by ``WellDataset(use_normalization=True)``). ``stats.yaml`` comes
    from the ``"train"`` split; another split only writes it when none exists yet.

    Channels named ``<base>_<axis>`` for every axis (e.g. ``velocity_x`` and ``velocity_y`` of a 2-D
    system) are stored as one vector field ``<base>`` in ``t1_fields`` (trailing axis ``d``);
    channels ``<base>_<a><b>`` for every pair of axes (e.g. ``D_xx``, ``D_xy``, ``D_yx``, ``D_yy``)
    as one rank-2 tensor field ``<base>`` in ``t2_fields`` (trailing axes ``(d, d)``); all other
    channels are scalar fields in ``t0_fields``. The original channel order is kept in the root
    attribute ``skphys_field_names`` and :func:`load_well` restores it.

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


