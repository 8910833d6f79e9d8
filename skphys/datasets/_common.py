"""Shared plumbing of the simulators: argument validation, parameter sampling, chunking,
noise, progress bars and Bunch assembly."""

from __future__ import annotations

import numbers

import numpy as np
import torch
from scipy.stats import truncnorm
from sklearn.utils import Bunch
from sklearn.utils.validation import check_random_state

from .._base import resolve_device

__all__ = [
    "check_int",
    "check_positive",
    "check_range",
    "check_precision",
    "sample_truncnorm",
    "sample_loguniform",
    "resolve_parameter",
    "chunks",
    "progress",
    "add_noise",
    "make_bunch",
]


def check_int(value, name, minimum=1):
    """``value`` as an int >= ``minimum`` or a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(value, name, strict=True):
    """``value`` as a finite float > 0 (or >= 0 when ``strict=False``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or (value <= 0 if strict else value < 0):
        raise ValueError(f"{name} must be {'>' if strict else '>='} 0 and finite, got {value}")
    return value


def check_range(value, name, lower=None, upper=None):
    """A ``(low, high)`` pair with ``low <= high`` inside ``[lower, upper]``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from exc
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low > high:
        raise ValueError(f"{name}=({low}, {high}) has low > high")
    if lower is not None and low < lower:
        raise ValueError(f"{name}=({low}, {high}) must lie in [{lower}, {upper if upper is not None else 'inf'}]")
    if upper is not None and high > upper:
        raise ValueError(f"{name}=({low}, {high}) must lie in [{lower if lower is not None else '-inf'}, {upper}]")
    return low, high


def check_precision(precision):
    """``"double"`` -> (float64, complex128), ``"single"`` -> (float32, complex64)."""
    if precision == "double":
        return torch.float64, torch.complex128
    if precision == "single":
        return torch.float32, torch.complex64
    raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")


def sample_truncnorm(rng, n, mean, std, bounds):
    """``n`` draws of a normal(mean, std) truncated to ``bounds`` (``std == 0`` gives ``mean``)."""
    low, high = bounds
    if std == 0 or low == high:
        return np.full(n, np.clip(mean, low, high), dtype=float)
    a, b = (low - mean) / std, (high - mean) / std
    return truncnorm.rvs(a, b, loc=mean, scale=std, size=n, random_state=rng).astype(float)


def sample_loguniform(rng, n, bounds):
    """``n`` draws log-uniform on ``bounds`` (both > 0)."""
    low, high = bounds
    return np.exp(rng.uniform(np.log(low), np.log(high), size=n))


def resolve_parameter(value, name, n_samples, sampler, check=None):
    """A per-trajectory parameter vector of shape ``(n_samples,)``.

    ``value`` None -> ``sampler()``; a number -> that value for all; an array of shape
    ``(n_samples,)`` -> used as is. ``check(array)`` may raise for values out of the valid domain.
    """
    if value is None:
        out = np.asarray(sampler(), dtype=float)
    else:
        try:
            out = np.asarray(value, dtype=float)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be None, a number or an array of {n_samples} numbers") from exc
        if out.ndim == 0:
            out = np.full(n_samples, float(out))
        elif out.shape != (n_samples,):
            raise ValueError(f"{name} must be a number or have shape ({n_samples},), got shape {out.shape}")
        if not np.isfinite(out).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    if check is not None:
        check(out)
    return out


def chunks(n_samples, chunk_size):
    """``(start, stop)`` pairs covering ``range(n_samples)``."""
    return [(s, min(s + chunk_size, n_samples)) for s in range(0, n_samples, chunk_size)]


def resolve_chunk_size(chunk_size, n_samples, bytes_per_sample, device, budget=None):
    """Trajectories per chunk: given, or what fits in ``budget`` bytes of working memory
    (512 MiB on the CPU, 4 GiB on a GPU by default)."""
    if chunk_size is not None:
        return check_int(chunk_size, "chunk_size")
    if budget is None:
        budget = (4 << 30) if device.type == "cuda" else (512 << 20)
    return int(max(1, min(n_samples, budget // max(1, bytes_per_sample))))


def progress(total, verbose, desc):
    """A tqdm bar when ``verbose`` (else a no-op object with ``update``/``close``)."""
    if verbose:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False)

    class _Null:
        def update(self, n=1):
            pass

        def close(self):
            pass

    return _Null()


def check_common(n_samples, noise, return_X_y, verbose):
    n_samples = check_int(n_samples, "n_samples")
    noise = check_positive(noise, "noise", strict=False)
    if not isinstance(return_X_y, (bool, np.bool_)):
        raise TypeError(f"return_X_y must be a bool, got {return_X_y!r}")
    return n_samples, noise


def add_noise(X, noise, rng, scale=None):
    """In place: ``X += noise * scale * N(0, 1)`` (``scale`` per channel, default 1)."""
    if noise > 0:
        scale = 1.0 if scale is None else np.asarray(scale, dtype=np.float32)
        for i in range(X.shape[0]):  # per trajectory to bound the temporary's size
            X[i] += (noise * scale * rng.standard_normal(X.shape[1:])).astype(np.float32)
    return X


def make_bunch(
    X, y, *, target_names, field_names, time, coords, dim_names, dt, descr, return_X_y, **extra
):
    """Assemble the simulators' common return value."""
    y = np.asarray(y, dtype=float).reshape(X.shape[0], -1)
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        target_names=list(target_names),
        field_names=list(field_names),
        time=np.asarray(time, dtype=float),
        coords=tuple(np.asarray(c, dtype=float) for c in coords),
        dim_names=tuple(dim_names),
        boundary_conditions={d: "periodic" for d in dim_names},
        dt=float(dt),
        DESCR=descr,
        **extra,
    )


def setup(random_state, device, precision):
    """(RandomState, torch.device, real dtype, complex dtype)."""
    rng = check_random_state(random_state)
    dev = resolve_device(device)
    rdtype, cdtype = check_precision(precision)
    return rng, dev, rdtype, cdtype


class cpu_settings:
    """Context manager for the CPU while simulating.

    - flushes denormal floats to zero (strongly damped Fourier modes, e.g. ``gamma k^4`` in KS,
      decay through the denormal range, where CPU arithmetic is much slower); torch has no
      getter for this setting, so it is restored to torch's default (off) on exit;
    - uses one intra-op thread when each tensor operation touches fewer than ``2**17``
      elements: thread start-up then costs more than it saves, and on a loaded machine it
      made a tiny KS run 25x slower (10.3 s instead of 0.4 s). The thread count is restored.
    Does nothing on a GPU.
    """

    def __init__(self, device, elements_per_op):
        self.active = torch.device(device).type == "cpu"
        self.small = elements_per_op < 2**17

    def __enter__(self):
        self.flushed = self.active and torch.set_flush_denormal(True)
        self.threads = torch.get_num_threads()
        if self.active and self.small and self.threads > 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self.flushed:
            torch.set_flush_denormal(False)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return False


def substeps(dt_out, dt_max):
    """Number of equal internal steps per output interval so that the step is <= ``dt_max``."""
    return max(1, int(np.ceil(dt_out / dt_max - 1e-9)))
