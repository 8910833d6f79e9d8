"""Trajectory data for skphys: built-in PDE simulators and The Well I/O.

Data convention (shared by every estimator):

- ``X`` is float32 and channels-last: ``(n_samples, n_frames, n_points, n_channels)`` for 1-D
  systems and ``(n_samples, n_frames, ny, nx, n_channels)`` for 2-D systems.
- ``y`` is ``(n_samples, n_params)``.

Every simulator ``make_*`` returns a :class:`sklearn.utils.Bunch` with ``data``, ``target``,
``target_names``, ``field_names``, ``time``, ``coords``, ``dim_names``, ``boundary_conditions``,
``dt`` and ``DESCR`` (or ``(X, y)`` with ``return_X_y=True``).
"""

import importlib

_LAZY = {
    "make_kuramoto_sivashinsky": "kuramoto_sivashinsky",
    "make_nonlinear_schrodinger": "nonlinear_schrodinger",
    "make_convection_diffusion": "convection_diffusion",
    "make_shear_flow": "shear_flow",
    "make_rayleigh_benard": "rayleigh_benard",
    "make_active_matter": "active_matter",
    "write_well": "well",
    "load_well": "well",
    "LazyWindows": "well",
    "shard_indices": "well",
    "prefetch": "_prefetch",
    "SIMULATORS": "_registry",
    "make_system": "_registry",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skphys.datasets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
