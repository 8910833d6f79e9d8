"""skphys: scikit-learn estimators that learn physically meaningful representations of
spatiotemporal physical systems and estimate their governing parameters.

Public estimators are imported lazily, so ``import skphys`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {
    "JEPAEmbedder": "skphys._jepa",
    "AttentiveProbeRegressor": "skphys._probe",
    "VideoMAEEmbedder": "skphys._videomae",
    "DynamicsVAE": "skphys._dynamics_vae",
    "MPPEmbedder": "skphys._mpp",
    "DISCOEmbedder": "skphys._disco",
    "FineTunedRegressor": "skphys._finetune",
    "datasets": "skphys.datasets",
    "metrics": "skphys.metrics",
    "nn": "skphys.nn",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if _LAZY[name].endswith(name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'skphys' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
