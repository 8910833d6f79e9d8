"""skphys: scikit-learn estimators that learn physically meaningful representations of
spatiotemporal physical systems and estimate their governing parameters.

Estimators
    :class:`JEPAEmbedder`, :class:`VideoMAEEmbedder`, :class:`DynamicsVAE` (and
    :class:`BetaPathVAE`, which fits it along decreasing KL weights), the physical-modeling
    baselines :class:`MPPEmbedder` and :class:`DISCOEmbedder`, :class:`AttentiveProbeRegressor`,
    :class:`FineTunedRegressor` (end-to-end fine-tuning of any embedder), and the non-learned
    baseline :class:`SpectralStatsFeatures`.
Displays (:mod:`skphys.display`)
    :class:`LatentStatisticsDisplay`, :class:`ParameterParityDisplay`,
    :class:`RolloutErrorDisplay`, :class:`LabelEfficiencyDisplay`.
Helpers
    :func:`resolve_device` (``"auto"`` -> CUDA when available) and :class:`ETDRK4`, the batched
    exponential time-differencing integrator behind the simulators.
Subpackages and modules
    :mod:`skphys.datasets` (simulators, The Well I/O), :mod:`skphys.metrics`,
    :mod:`skphys.display`, :mod:`skphys.utils` (atomic file writes), :mod:`skphys.nn`
    (the torch modules).

Everything is imported lazily, so ``import skphys`` stays cheap (no torch, no matplotlib).
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    # estimators
    "JEPAEmbedder": "skphys._jepa",
    "AttentiveProbeRegressor": "skphys._probe",
    "VideoMAEEmbedder": "skphys._videomae",
    "DynamicsVAE": "skphys._dynamics_vae",
    "BetaPathVAE": "skphys._beta_path",
    "MPPEmbedder": "skphys._mpp",
    "DISCOEmbedder": "skphys._disco",
    "FineTunedRegressor": "skphys._finetune",
    "SpectralStatsFeatures": "skphys._features",
    # displays
    "LatentStatisticsDisplay": "skphys.display",
    "ParameterParityDisplay": "skphys.display",
    "RolloutErrorDisplay": "skphys.display",
    "LabelEfficiencyDisplay": "skphys.display",
    # helpers
    "resolve_device": "skphys._base",
    "ETDRK4": "skphys.datasets._spectral",
    # subpackages and modules
    "datasets": "skphys.datasets",
    "display": "skphys.display",
    "metrics": "skphys.metrics",
    "nn": "skphys.nn",
    "utils": "skphys.utils",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        target = _LAZY[name]
        module = importlib.import_module(target)
        value = module if target == f"{__name__}.{name}" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skphys' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
