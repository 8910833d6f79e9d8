"""Name -> simulator registry of the built-in systems."""

from __future__ import annotations

from .active_matter import make_active_matter
from .convection_diffusion import make_convection_diffusion
from .kuramoto_sivashinsky import make_kuramoto_sivashinsky
from .nonlinear_schrodinger import make_nonlinear_schrodinger
from .rayleigh_benard import make_rayleigh_benard
from .shear_flow import make_shear_flow

__all__ = ["SIMULATORS", "make_system"]

#: Built-in simulators by name. Each takes ``n_samples`` first, then keyword arguments.
SIMULATORS = {
    "kuramoto_sivashinsky": make_kuramoto_sivashinsky,
    "nonlinear_schrodinger": make_nonlinear_schrodinger,
    "convection_diffusion": make_convection_diffusion,
    "shear_flow": make_shear_flow,
    "rayleigh_benard": make_rayleigh_benard,
    "active_matter": make_active_matter,
}


def make_system(name, n_samples=100, **kwargs):
    """Simulate the built-in system ``name`` (a key of :data:`SIMULATORS`).

    Parameters
    ----------
    name : str
        ``"kuramoto_sivashinsky"``, ``"nonlinear_schrodinger"``, ``"convection_diffusion"``,
        ``"shear_flow"``, ``"rayleigh_benard"`` or ``"active_matter"``.
    n_samples : int, default=100
    **kwargs
        Passed to the simulator (see its docstring); an unknown keyword raises ``TypeError``.

    Returns
    -------
    Bunch or (X, y)

    Examples
    --------
    >>> from skphys.datasets import make_system
    >>> X, y = make_system("convection_diffusion", 2, n_points=8, n_frames=2,
    ...                    random_state=0, device="cpu", return_X_y=True)
    >>> X.shape
    (2, 2, 8, 8, 1)
    """
    if not isinstance(name, str) or name not in SIMULATORS:
        raise ValueError(f"unknown system {name!r}; known systems: {', '.join(sorted(SIMULATORS))}")
    return SIMULATORS[name](n_samples, **kwargs)
