"""The Well's HDF5 layout: names, attribute helpers and typed per-file metadata.

Shared by the writer (:mod:`._well_write`), the reader (:mod:`._well_read`) and the lazy windows
(:mod:`._well_lazy`). :func:`scan_file` reads one file's metadata with h5py into a
:class:`WellFileMetadata`; it never reads field data.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

BC_TYPES = ("periodic", "wall", "open")
REQUIRED_GROUPS = ("dimensions", "boundary_conditions", "scalars", "t0_fields", "t1_fields", "t2_fields")
# Names The Well's published files use under the wrong label, per dataset: {dataset: {stored: true}}.
SCALAR_RENAMES = {"shear_flow": {"Rayleigh": "Reynolds"}}
NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


def component_suffixes(spatial_dims, order):
    """Component suffixes of a tensor field of ``order`` (0, 1 or 2), as The Well flattens them:
    ``[""]``, ``["x", "y"]``, ``["xx", "xy", "yx", "yy"]`` (row-major over ``spatial_dims``)."""
    return ["".join(p) for p in itertools.product(spatial_dims, repeat=order)]


def channel_names(name, spatial_dims, order):
    """Channel names of field ``name``: ``velocity`` -> ``velocity_x``, ``velocity_y``."""
    return [f"{name}_{s}" if s else name for s in component_suffixes(spatial_dims, order)]


def attr_str(value):
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def attr_list(value):
    if isinstance(value, (str, bytes)):
        return [attr_str(value)]
    return [attr_str(v) for v in np.atleast_1d(value)]


def str_array(values):
    """A list of strings as an HDF5 attribute (variable-length UTF-8)."""
    return np.array([str(v) for v in values], dtype=h5py.string_dtype())


@dataclass(frozen=True)
class WellField:
    """One time-varying field of a The Well file (``t<order>_fields/<name>``).

    Attributes
    ----------
    name : str
        Field name, e.g. ``"velocity"``.
    order : int
        Tensor order: 0 (scalar), 1 (vector, trailing axis ``d``), 2 (tensor, trailing ``d, d``).
    channels : tuple of str
        Its channel names in The Well's flattening order, e.g. ``("velocity_x", "velocity_y")``.
    sample_varying : bool
        Whether the array has a leading trajectory axis.
    shape : tuple of int
        Shape of the stored array.
    chunk_frames : int
        Frames per HDF5 chunk along time (1 for contiguous storage). Reading one frame of a chunk
        reads the whole chunk.
    """

    name: str
    order: int
    channels: tuple
    sample_varying: bool
    shape: tuple
    chunk_frames: int

    @property
    def path(self):
        return f"t{self.order}_fields/{self.name}"


@dataclass(frozen=True)
class WellFileMetadata:
    """What one The Well HDF5 file holds, read by :func:`scan_file` (in the spirit of
    ``the_well.data.datasets.WellMetadata``, per file).

    Attributes
    ----------
    path : str
    dataset_name : str
    grid_type : str
    n_trajectories : int
    n_steps : int
        Frames per trajectory (last axis of ``dimensions/time``).
    spatial_dims : tuple of str
        Axis names in array order.
    spatial_resolution : tuple of int
    time : ndarray
        ``(n_steps,)``, or ``(n_trajectories, n_steps)`` when sample-varying.
    coords : tuple of ndarray
        One 1-D coordinate array per axis (the first trajectory's if sample-varying).
    boundary_conditions : dict
        Axis -> sorted tuple of lower-case BC types found for it.
    constant_scalars : dict
        Name -> ``(n_trajectories,)`` float64 values (time-independent scalars).
    fields : tuple of WellField
        Time-varying fields in The Well's channel order (t0, t1, t2, each in attribute order).
    constant_fields : tuple of str
        Names of time-independent fields (not returned as channels).
    skphys_field_names : tuple of str or None
        The channel order a :func:`~skphys.datasets.write_well` file was written with.
    description : str
    dt : float or None
        ``skphys_dt`` when present.
    """

    path: str
    dataset_name: str
    grid_type: str
    n_trajectories: int
    n_steps: int
    spatial_dims: tuple
    spatial_resolution: tuple
    time: np.ndarray = field(repr=False)
    coords: tuple = field(repr=False)
    boundary_conditions: dict
    constant_scalars: dict = field(repr=False)
    fields: tuple
    constant_fields: tuple = ()
    skphys_field_names: tuple | None = None
    description: str = ""
    dt: float | None = None

    @property
    def channel_names(self):
        """All time-varying channels, in The Well's order."""
        return [c for f in self.fields for c in f.channels]

    @property
    def components(self):
        """Field name -> its channel names."""
        return {f.name: list(f.channels) for f in self.fields}

    def trajectory_time(self, i):
        return self.time[i] if self.time.ndim > 1 else self.time


def _chunk_frames(ds, sample_varying):
    if ds.chunks is None:
        return 1  # contiguous: a read costs only the frames asked for
    return int(ds.chunks[1 if sample_varying else 0])


def scan_file(path, what="load_well"):
    """Read one file's metadata with h5py into a :class:`WellFileMetadata`.

    Raises ``ValueError`` naming the file when it is not readable HDF5, not in The Well's layout,
    or holds a time-varying field whose shape disagrees with its attributes.
    """
    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"{what}: cannot open {path}: not a readable HDF5 file (corrupt or truncated?): {exc}") from exc
    try:
        with fh as f:
            missing = [g for g in REQUIRED_GROUPS if g not in f]
            if missing:
                raise ValueError(f"{what}: {path} is not in The Well's format: missing group(s) {missing}")
            for a in ("dataset_name", "n_trajectories"):
                if a not in f.attrs:
                    raise ValueError(f"{what}: {path} is not in The Well's format: missing root attribute {a!r}")
            dims = f["dimensions"]
            spatial_dims = tuple(attr_list(dims.attrs["spatial_dims"]))
            time = np.asarray(dims["time"][()], dtype=np.float64)
            n_traj = int(f.attrs["n_trajectories"])
            T = int(time.shape[-1])
            coords = []
            for d in spatial_dims:
                c = np.asarray(dims[d][()], dtype=np.float64)
                coords.append(c[0] if c.ndim > 1 else c)
            resolution = tuple(int(dims[d].shape[-1]) for d in spatial_dims)
            bcs = {}
            for key in f["boundary_conditions"]:
                g = f["boundary_conditions"][key]
                for d in attr_list(g.attrs["associated_dims"]):
                    bcs.setdefault(d, set()).add(attr_str(g.attrs["bc_type"]).lower())
            scalars = {}
            for s in attr_list(f["scalars"].attrs["field_names"]):
                ds = f["scalars"][s]
                if bool(ds.attrs["time_varying"]):
                    continue
                val = np.asarray(ds[()], dtype=np.float64)
                if bool(ds.attrs["sample_varying"]):
                    if val.size != n_traj:
                        raise ValueError(f"{what}: {path}: scalar {s!r} has {val.size} values for {n_traj} trajectories")
                    scalars[s] = val.reshape(n_traj)
                else:
                    scalars[s] = np.full(n_traj, float(val.reshape(-1)[0]))
            fields, constant = [], []
            for order in range(3):
                group = f[f"t{order}_fields"]
                for name in attr_list(group.attrs["field_names"]):
                    ds = group[name]
                    if not bool(ds.attrs["time_varying"]):
                        constant.append(name)
                        continue
                    sample_varying = bool(ds.attrs["sample_varying"])
                    dim_varying = [bool(v) for v in np.atleast_1d(ds.attrs["dim_varying"])]
                    if not all(dim_varying):
                        raise ValueError(
                            f"{what}: {path}: the time-varying field {name!r} does not vary along every axis "
                            f"(dim_varying={dim_varying}); only fields that vary along all axes can be read"
                        )
                    expected = ((n_traj,) if sample_varying else ()) + (T, *resolution) + (len(spatial_dims),) * order
                    if tuple(ds.shape) != expected:
                        raise ValueError(
                            f"{what}: {path}: field t{order}_fields/{name} has shape {ds.shape}, expected {expected} "
                            "from its attributes (corrupt file?)"
                        )
                    fields.append(
                        WellField(
                            name=name,
                            order=order,
                            channels=tuple(channel_names(name, spatial_dims, order)),
                            sample_varying=sample_varying,
                            shape=tuple(int(s) for s in ds.shape),
                            chunk_frames=_chunk_frames(ds, sample_varying),
                        )
                    )
            order_attr = tuple(attr_list(f.attrs["skphys_field_names"])) if "skphys_field_names" in f.attrs else None
            return WellFileMetadata(
                path=os.fspath(path),
                dataset_name=attr_str(f.attrs["dataset_name"]),
                grid_type=attr_str(f.attrs.get("grid_type", "cartesian")),
                n_trajectories=n_traj,
                n_steps=T,
                spatial_dims=spatial_dims,
                spatial_resolution=resolution,
                time=time,
                coords=tuple(coords),
                boundary_conditions={d: tuple(sorted(v)) for d, v in bcs.items()},
                constant_scalars=scalars,
                fields=tuple(fields),
                constant_fields=tuple(constant),
                skphys_field_names=order_attr,
                description=attr_str(f.attrs["skphys_description"]) if "skphys_description" in f.attrs else "",
                dt=float(f.attrs["skphys_dt"]) if "skphys_dt" in f.attrs else None,
            )
    except (KeyError, OSError) as exc:
        raise ValueError(f"{what}: {path} is not a valid The Well file (corrupt or truncated?): {exc!r}") from exc
