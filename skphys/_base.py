"""What every torch-backed skphys estimator shares.

- device choice (``device="auto"`` -> CUDA when available),
- seeding from ``random_state``,
- validation of trajectory arrays ``X`` (channels-last, see :mod:`skphys.datasets`),
- batch iteration for ``transform`` (works on lazy array-likes too),
- mixed precision on GPU,
- pickling that stores modules on the CPU, so a GPU-trained model loads on a CPU-only machine.

The estimators themselves live in their own private modules and only call these helpers.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_random_state

__all__ = [
    "resolve_device",
    "torch_seed",
    "check_trajectories",
    "iter_batches",
    "autocast",
    "TorchEstimatorMixin",
    "to_channels_first",
]


#: Constraints of the constructor parameters every torch estimator shares (scikit-learn's
#: ``_parameter_constraints`` format); each estimator adds its own with ``{**TRAINING_CONSTRAINTS, ...}``.
TRAINING_CONSTRAINTS = {
    "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "lr": [Interval(numbers.Real, 0, None, closed="neither")],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "warmup_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
    "device": [str, torch.device],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


def resolve_device(device="auto"):
    """Return a :class:`torch.device` for ``device``.

    ``"auto"`` gives ``cuda`` when a GPU is visible and ``cpu`` otherwise. A CUDA device asked
    for explicitly on a machine without one raises a ``ValueError``.
    """
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(f"device={device!r} is not a valid torch device") from exc
    else:
        raise TypeError(f"device must be 'auto', a string or a torch.device, got {type(device).__name__}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available")
    return dev


def torch_seed(random_state):
    """Draw a 31-bit integer seed from ``random_state`` (None, int or RandomState)."""
    return int(check_random_state(random_state).randint(0, 2**31 - 1))


def torch_generator(seed, device="cpu"):
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def is_lazy(X):
    """True for array-likes that are not numpy arrays (e.g. :class:`skphys.datasets.LazyWindows`)."""
    return not isinstance(X, np.ndarray) and hasattr(X, "shape") and hasattr(X, "__getitem__")


def check_trajectories(
    X,
    *,
    spatial_dims=(1, 2),
    min_frames=1,
    min_space=None,
    n_channels=None,
    estimator=None,
    allow_lazy=True,
    check_finite=True,
):
    """Validate a trajectory array ``X`` of shape ``(n, T, *space, C)``.

    Parameters
    ----------
    X : array-like
        Trajectories, channels-last: ``(n, T, X, C)`` (1-D systems) or ``(n, T, H, W, C)`` (2-D).
    spatial_dims : tuple of int
        Accepted numbers of spatial axes.
    min_frames : int
        Minimum number of frames ``T``.
    min_space : int or sequence of int, optional
        Minimum size of each spatial axis.
    n_channels : int, optional
        Required number of channels (the one seen in ``fit``).
    estimator : str, optional
        Name used in error messages.
    allow_lazy : bool
        Pass lazy array-likes through unchanged (their batches are checked when read).
    check_finite : bool
        Raise on NaN or inf.

    Returns
    -------
    X : ndarray of float32, or the lazy array-like unchanged.
    """
    who = f"{estimator}: " if estimator else ""
    if allow_lazy and is_lazy(X):
        shape = tuple(X.shape)
    else:
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        try:
            X = np.asarray(X)
        except Exception as exc:  # ragged lists and similar
            raise TypeError(f"{who}X must be an array of trajectories, got {type(X).__name__}") from exc
        if X.dtype == object or not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
            raise TypeError(f"{who}X must be numeric, got dtype {X.dtype}")
        if np.iscomplexobj(X):
            raise TypeError(f"{who}X must be real; store real and imaginary parts as two channels")
        X = np.ascontiguousarray(X, dtype=np.float32)
        shape = X.shape
    allowed = sorted(2 + d + 1 for d in spatial_dims)
    if len(shape) not in allowed:
        layouts = " or ".join(
            "(n_samples, n_frames, " + ", ".join(["n_points"] if d == 1 else ["ny", "nx"][:d]) + ", n_channels)"
            for d in sorted(spatial_dims)
        )
        raise ValueError(f"{who}X must have {' or '.join(map(str, allowed))} dimensions {layouts}; got shape {shape}")
    if shape[0] < 1:
        raise ValueError(f"{who}X has no samples (shape {shape})")
    if shape[1] < min_frames:
        raise ValueError(f"{who}X has {shape[1]} frames but at least {min_frames} are needed")
    if min_space is not None:
        space = shape[2:-1]
        mins = [min_space] * len(space) if isinstance(min_space, numbers.Integral) else list(min_space)
        if any(s < m for s, m in zip(space, mins)):
            raise ValueError(f"{who}X has spatial size {tuple(space)} but at least {tuple(mins)} is needed")
    if n_channels is not None and shape[-1] != n_channels:
        raise ValueError(f"{who}X has {shape[-1]} channels but the estimator was fitted with {n_channels}")
    if check_finite and isinstance(X, np.ndarray) and not np.isfinite(X).all():
        raise ValueError(f"{who}X contains NaN or infinite values")
    return X


def check_finite_batch(batch, who=""):
    """Raise ``ValueError`` if a batch read from a lazy array holds NaN or inf."""
    if not np.isfinite(batch).all():
        raise ValueError(f"{who}X contains NaN or infinite values")
    return batch


def iter_batches(X, batch_size):
    """Yield ``(start, batch)`` with float32 numpy batches of ``X`` (array or lazy array-like)."""
    n = X.shape[0]
    for start in range(0, n, batch_size):
        batch = X[start : start + batch_size]
        yield start, np.ascontiguousarray(np.asarray(batch), dtype=np.float32)


def to_channels_first(x):
    """``(n, T, *space, C)`` tensor -> ``(n, C, T, *space)``."""
    return x.movedim(-1, 1)


def autocast(device, enabled=True):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class TorchEstimatorMixin:
    """Pickling and device handling for estimators holding fitted ``torch.nn.Module`` attributes.

    Fitted modules are stored on the CPU when pickled, so a model trained on a GPU loads on a
    machine without one. ``_module_on(name)`` returns the module on the device the estimator
    should run on now (``self.device`` resolved at call time).
    """

    def __getstate__(self):
        state = self.__dict__.copy()
        for key, value in state.items():
            if isinstance(value, torch.nn.Module) and key.endswith("_"):
                state[key] = copy.deepcopy(value).to("cpu")
            elif isinstance(value, torch.Tensor):
                state[key] = value.detach().to("cpu")
        return state

    def _runtime_device(self):
        """Device for inference: ``self.device``, falling back to the CPU (with a warning) when a
        model whose ``device`` names CUDA is used on a machine without a GPU."""
        device = getattr(self, "device", "auto")
        if not torch.cuda.is_available() and str(device).startswith("cuda"):
            warnings.warn(f"device={device!r} is not available here; running on the CPU", RuntimeWarning)
            return torch.device("cpu")
        return resolve_device(device)

    def _module_on(self, name, device):
        module = getattr(self, name)
        if next(module.parameters(), torch.empty(0)).device != device:
            module = module.to(device)
            setattr(self, name, module)
        return module


def channel_stats(X, batch_size=64, estimator=None):
    """Per-channel mean and std of trajectories ``X`` (array or lazy array-like), in float64.

    Streamed in batches (peak memory one batch), with a shift by the first batch's mean so that
    fields far from zero keep their precision. A channel with (numerically) zero spread gets
    scale 1, so normalizing it never divides by zero.
    """
    who = f"{estimator}: " if estimator else ""
    lazy = is_lazy(X)
    n_ch = X.shape[-1]
    shift = total = total_sq = None
    count = 0
    for _, batch in iter_batches(X, batch_size):
        if lazy:
            check_finite_batch(batch, who)
        b = batch.reshape(-1, n_ch).astype(np.float64)
        if shift is None:
            shift = b.mean(0)
            total, total_sq = np.zeros(n_ch), np.zeros(n_ch)
        d = b - shift
        total += d.sum(0)
        total_sq += (d * d).sum(0)
        count += d.shape[0]
    m = total / count
    mean = shift + m
    std = np.sqrt(np.maximum(total_sq / count - m * m, 0.0))
    std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
    return mean, std


def read_rows(X, idx, estimator=None):
    """Rows ``idx`` of an array or lazy array-like as float32 numpy (lazy reads in sorted order,
    as h5py-backed readers want; NaN in lazily read rows raises)."""
    idx = np.asarray(idx)
    if isinstance(X, np.ndarray):
        return np.asarray(X[idx], dtype=np.float32)
    order = np.argsort(idx, kind="stable")
    rows = np.asarray(X[idx[order]], dtype=np.float32)
    check_finite_batch(rows, f"{estimator}: " if estimator else "")
    out = np.empty_like(rows)
    out[order] = rows
    return out


def normalized_batch(batch, mean, scale, device):
    """Channels-last numpy batch -> per-channel normalized, channels-first float32 tensor on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device, non_blocking=True)
    mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=device)
    scale = torch.as_tensor(np.asarray(scale), dtype=torch.float32, device=device)
    return to_channels_first((x - mean) / scale)


class WindowSampler:
    """Random windows of ``length`` consecutive frames, normalized per channel, for training.

    ``epoch(batch_size)`` visits every trajectory once in a random order and yields
    channels-first float32 tensors ``(b, C, length, *space)`` on ``device``, each from a random
    start frame. An in-memory array is normalized and moved to the device once and windows are
    gathered there; a lazy array-like (e.g. :class:`skphys.datasets.LazyWindows`) is read batch
    by batch, so memory stays bounded by one batch. Indices come from a CPU generator seeded with
    ``seed``, so the windows drawn do not depend on the device.
    """

    def __init__(self, X, length, mean, scale, device, seed, estimator=None, max_device_fraction=0.25):
        self.X, self.length, self.device, self.estimator = X, int(length), device, estimator
        self.n, self.n_frames = X.shape[0], X.shape[1]
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32, device=device)
        self.scale = torch.as_tensor(np.asarray(scale), dtype=torch.float32, device=device)
        self.generator = torch_generator(seed)
        self.data = None
        if isinstance(X, np.ndarray):
            fits = device.type != "cuda" or X.nbytes < max_device_fraction * torch.cuda.mem_get_info(device)[0]
            if fits:
                self.data = self.normalize(torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device))

    def normalize(self, x):
        """Channels-last tensor on the device -> normalized (same layout)."""
        return (x - self.mean) / self.scale

    def epoch(self, batch_size):
        perm = torch.randperm(self.n, generator=self.generator)
        offsets = torch.arange(self.length)
        for s in range(0, self.n, batch_size):
            idx = perm[s : s + batch_size]
            t0 = torch.randint(0, self.n_frames - self.length + 1, (len(idx), 1), generator=self.generator)
            if self.data is not None:
                win = self.data[idx.to(self.device)[:, None], (t0 + offsets).to(self.device)]
            else:
                rows = read_rows(self.X, idx.numpy(), self.estimator)
                win = rows[np.arange(len(idx))[:, None], (t0 + offsets).numpy()]
                win = self.normalize(torch.from_numpy(win).to(self.device, non_blocking=True))
            yield to_channels_first(win)
