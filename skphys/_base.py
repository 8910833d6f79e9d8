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
import os
import numbers
import warnings

import numpy as np
import torch
from sklearn.base import BaseEstimator
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
    "checkpoint_dir": [str, os.PathLike, None],
    "callbacks": [list, tuple, None],
}


def resolve_device(device="auto"):
    """Return a :class:`torch.device` for ``device``.

    ``"auto"`` gives ``cuda`` when a GPU is visible and ``cpu`` otherwise. A CUDA device asked
    for explicitly on a machine without one raises a ``ValueError``.

    Examples
    --------
    >>> from skphys import resolve_device
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("auto").type in ("cpu", "cuda")
    True
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
    machine without one. ``_module_on(name, device)`` returns the fitted module on ``device``
    without changing the fitted attribute: a module on another device is copied once and the
    copy cached privately (the cache is dropped by ``fit`` and by pickling).
    """

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_runtime_modules", None)
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
        if next(module.parameters(), torch.empty(0)).device == device:
            return module
        cache = self.__dict__.setdefault("_runtime_modules", {})
        key = (name, str(device))
        if key not in cache or cache[key][0] is not module:
            cache[key] = (module, copy.deepcopy(module).to(device))
        return cache[key][1]


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


# ---------------------------------------------------------------------------------------------
# The base of every torch estimator: fit's scaffold, the engine call, checkpoints, transform.
# ---------------------------------------------------------------------------------------------

#: parameters that do not change what a fit computes, so a checkpoint written under other
#: values of them can be resumed
_RESUME_FREE = frozenset({"verbose", "callbacks", "checkpoint_dir", "device", "warm_start"})

INIT = 0  # random stream of the initialisation (see skphys._training.step_seed)


def _stable_repr(value):
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_stable_repr(v) for v in value) + ")"
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    return repr(value)


class _Objective(torch.nn.Module):
    """The whole training objective as one module, so that DDP sees every parameter the loss
    uses and all-reduces their gradients: ``forward(batch)`` is the estimator's ``_loss``."""

    def __init__(self, estimator, modules, ctx):
        super().__init__()
        self.parts = torch.nn.ModuleDict(modules)
        self._estimator = [estimator]  # not a submodule
        self._ctx = ctx

    def forward(self, batch):
        return self._estimator[0]._loss(self.parts, batch, self._ctx)


class TorchEstimatorBase(TorchEstimatorMixin, BaseEstimator):
    """What every torch estimator of skphys shares; subclasses keep only what is their own.

    ``fit`` validates ``X`` (:meth:`_check_fit_input`), learns what it needs from the data
    (:meth:`_setup`), seeds and builds the modules (:meth:`_build_modules`), and hands them to the
    engine (:mod:`skphys._training`) with the objective (:meth:`_loss`) and the batches
    (:meth:`_batches`). The engine runs under ``torch.distributed`` when launched by torchrun,
    writes checkpoints to ``checkpoint_dir`` and calls skorch ``callbacks``. ``transform``-like
    methods iterate over batches with :meth:`_map_batches`.

    Override points, in the spirit of skorch's ``get_loss`` / ``train_step`` / ``get_iterator``:

    ``_check_fit_input(X, y)``
        Validate the data; return ``(X, y)``.
    ``_setup(X, y)``
        Set the fitted attributes learned from the data (sizes, normalization statistics).
    ``_build_modules()``
        ``{attribute_name: module}``, built under a seeded RNG (the same on every rank).
    ``_make_sampler(X, y, device, seed, batch_size)``
        An object with ``steps_per_epoch`` and ``batches(epoch, first_step, rows)``.
    ``_batches(sampler, epoch, first_step, rows, ctx)``
        Optional: turn the sampler's batches into the objective's (add noise, ...).
    ``_loss(modules, batch, ctx)``
        ``(loss, logs)``: a mean over this rank's rows (DDP averages the ranks' gradients).
    ``_train_options()``
        Optimizer and schedule settings for :class:`skphys._training.StepRunner`.
    ``_finish_fit(X, y)``
        Fitted attributes computed after training (e.g. latent statistics).
    """

    # ------------------------------------------------------------------ hooks with defaults
    def _check_fit_input(self, X, y):
        return check_trajectories(X, estimator=type(self).__name__), y

    def _setup(self, X, y):
        pass

    def _batches(self, sampler, epoch, first_step, rows, ctx):
        return sampler.batches(epoch, first_step, rows)

    def _train_options(self):
        return {}

    def _finish_fit(self, X, y):
        pass

    # ------------------------------------------------------------------ the scaffold
    def _seed(self, ctx):
        seed = torch_seed(self.random_state)
        return ctx.broadcast_object(seed)  # random_state=None: rank 0's draw for all

    def _fingerprint(self, X, y):
        params = {
            k: _stable_repr(v) for k, v in sorted(self.get_params(deep=False).items()) if k not in _RESUME_FREE
        }
        first = np.asarray(read_rows(X, [0]), dtype=np.float64)
        last = np.asarray(read_rows(X, [X.shape[0] - 1]), dtype=np.float64)
        data = {
            "shape": [int(s) for s in X.shape],
            "sums": [float(first.sum()), float(last.sum()), float(np.abs(first).sum())],
        }
        if y is not None:
            data["y_sum"] = float(np.asarray(y, dtype=np.float64).sum())
        return {"estimator": type(self).__name__, "params": params, "data": data}

    def _check_resume(self, path, saved, now):
        who = type(self).__name__
        if saved["estimator"] != now["estimator"]:
            raise ValueError(f"{who}: checkpoint {path} was written by {saved['estimator']}; use another checkpoint_dir")
        changed = sorted(
            k for k in set(saved["params"]) | set(now["params"]) if saved["params"].get(k) != now["params"].get(k)
        )
        if changed:
            details = ", ".join(f"{k}={saved['params'].get(k)} -> {now['params'].get(k)}" for k in changed)
            raise ValueError(
                f"{who}: checkpoint_dir holds a fit with other parameters ({details}); pass the same "
                f"parameters to resume it, or another checkpoint_dir to start a new fit"
            )
        if saved["data"] != now["data"]:
            raise ValueError(
                f"{who}: checkpoint {path} was written for other data (shape {saved['data']['shape']}, "
                f"now {now['data']['shape']}, or other values); pass the same X to resume, or another checkpoint_dir"
            )

    def _callbacks(self):
        cbs = []
        for cb in getattr(self, "callbacks", None) or ():
            if isinstance(cb, tuple) and len(cb) == 2 and isinstance(cb[0], str):
                cb = cb[1]
            if isinstance(cb, type):
                cb = cb()
            if not hasattr(cb, "on_epoch_end"):
                raise TypeError(f"{type(self).__name__}: callbacks must be skorch callbacks, got {cb!r}")
            cb = copy.deepcopy(cb)
            if hasattr(cb, "initialize"):
                cb.initialize()
            cbs.append(cb)
        return cbs

    def _fit_engine(self, X, y=None, *, warm=False):
        """The whole of ``fit`` after parameter validation (called by each estimator's ``fit``)."""
        from skorch.history import History

        from ._checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
        from ._distributed import distributed_context
        from ._training import StepRunner, fit_loop, step_seed

        who = type(self).__name__
        X, y = self._check_fit_input(X, y)
        callbacks = self._callbacks()
        self.__dict__.pop("_runtime_modules", None)
        device = resolve_device(self.device)
        with distributed_context(device) as ctx:
            device = ctx.device
            seed = self._seed(ctx)
            self._setup(X, y)
            n = X.shape[0]
            batch_size = min(int(self.batch_size), n)
            rows = ctx.local_rows(batch_size, f"{who}: ")
            if warm:
                modules = {name: getattr(self, name).to(device) for name in self._module_names()}
            else:
                with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                    torch.manual_seed(step_seed(seed, INIT))
                    modules = self._build_modules()
                modules = {k: m.to(device) for k, m in modules.items()}
            for m in modules.values():
                m.train()
            sampler = self._make_sampler(X, y, device, seed, batch_size)
            steps = sampler.steps_per_epoch
            history = History(list(self.history_)) if warm else History()
            first_epoch = len(history)
            max_epochs = first_epoch + int(self.max_epochs)
            options = dict(self._train_options())
            warmup_epochs = min(options.pop("warmup_epochs", 0), max(0, int(self.max_epochs) - 1))
            objective = _Objective(self, modules, ctx)
            wrapped = objective
            if ctx.is_distributed:
                from torch.nn.parallel import DistributedDataParallel as DDP

                wrapped = DDP(objective, device_ids=[device.index] if device.type == "cuda" else None)
            runner = StepRunner(
                wrapped, list(objective.parameters()), total_steps=max_epochs * steps, lr=self.lr,
                weight_decay=self.weight_decay, warmup_steps=warmup_epochs * steps, device=device,
                distributed=ctx.is_distributed, **options,
            )
            start_epoch, start_step, partial = first_epoch, 0, None
            if warm and getattr(self, "_optimizer_state", None) is not None:
                runner.load_state_dict(self._optimizer_state, moments_only=True)
            fingerprint = None
            ckpt_dir = getattr(self, "checkpoint_dir", None)
            if ckpt_dir is not None:
                fingerprint = self._fingerprint(X, y)
                path = None if warm else latest_checkpoint(ckpt_dir)
                if path is not None:
                    saved = load_checkpoint(path)
                    self._check_resume(path, saved["fingerprint"], fingerprint)
                    for name, m in modules.items():
                        m.load_state_dict(saved["modules"][name])
                    runner.load_state_dict(saved["runner"])
                    history = History(saved["history"])
                    start_epoch, start_step, partial = saved["epoch"], saved["step"], saved["partial"]
                    if self.verbose and ctx.is_main:
                        print(f"[{who}] resuming from {path} (epoch {start_epoch}, step {start_step})", flush=True)

            def save(state):
                save_checkpoint(ckpt_dir, {
                    "format": 1,
                    "fingerprint": fingerprint,
                    "modules": {k: {n: t.detach().cpu() for n, t in m.state_dict().items()} for k, m in modules.items()},
                    "runner": runner.state_dict(),
                    "history": [dict(r) for r in state.history],
                    "epoch": state.epoch,
                    "step": state.step,
                    "partial": dict(state.partial),
                }, state.epoch, state.step)

            state = fit_loop(
                runner,
                lambda epoch, first: self._batches(sampler, epoch, first, rows, ctx),
                max_epochs=max_epochs,
                steps_per_epoch=steps,
                ctx=ctx,
                history=history,
                start_epoch=start_epoch,
                start_step=start_step,
                partial=partial,
                callbacks=callbacks,
                net=self,
                save=save if ckpt_dir is not None else None,
                verbose=self.verbose,
                desc=who,
            )
            ctx.barrier()
        for name, m in modules.items():
            setattr(self, name, m.eval())
        self.history_ = state.history
        self._optimizer_state = runner.state_dict()
        self._finish_fit(X, y)
        return self

    def _module_names(self):
        return [k for k, v in self.__dict__.items() if k.endswith("_") and isinstance(v, torch.nn.Module)]

    def _map_batches(self, X, fn, batch_size=None):
        """Apply ``fn(batch)`` (a float32 numpy batch of ``X`` -> numpy array) to every batch of
        ``X`` in inference mode and concatenate. Lazy array-likes are read batch by batch and
        their batches checked for NaN/inf."""
        who = f"{type(self).__name__}: "
        lazy = is_lazy(X)
        out = []
        with torch.inference_mode():
            for _, batch in iter_batches(X, int(batch_size or self.batch_size)):
                if lazy:
                    check_finite_batch(batch, who)
                out.append(fn(batch))
        return np.concatenate(out)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        return tags


class NextFrameEmbedderBase(TorchEstimatorBase):
    """What the next-frame embedders on patched grids (MPP, DISCO) share: ``n_frames`` input
    frames and the frame after them, spatial axes divisible by ``patch_size``, and per-channel
    normalization learned in ``fit``. Subclasses check their own sizes in ``_check_sizes(shape)``
    (which returns the spatial shape) and may extend ``_setup``."""

    def _check_fit_input(self, X, y):
        who = type(self).__name__
        X = check_trajectories(X, spatial_dims=(1, 2), min_space=self.patch_size, estimator=who)
        if X.shape[1] < self.n_frames + 1:
            raise ValueError(
                f"{who}.fit: X has {X.shape[1]} frames but at least n_frames + 1 = {self.n_frames + 1} are needed "
                "(the input frames and the frame to predict)"
            )
        self._check_sizes(X.shape)
        return X, y

    def _setup(self, X, y):
        space = self._check_sizes(X.shape)
        self.n_channels_ = int(X.shape[-1])
        self.n_spatial_dims_ = len(space)
        self.spatial_shape_ = space
        self.mean_, self.scale_ = channel_stats(X, max(1, self.batch_size), estimator=type(self).__name__)
