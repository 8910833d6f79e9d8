"""Attentive probe regressor (V-JEPA style) on frozen token embeddings."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state

from ._base import TRAINING_CONSTRAINTS, TorchEstimatorBase, autocast
from ._sampling import RowSampler
from .nn.attentive_pooler import AttentiveHead

__all__ = ["AttentiveProbeRegressor"]

_TRANSFORMS = {
    "log10": (np.log10, lambda z: np.power(10.0, z)),
    "log": (np.log, np.exp),
}


def _largest_divisor_at_most(n, k):
    for d in range(min(n, k), 0, -1):
        if n % d == 0:
            return d
    return 1


class AttentiveProbeRegressor(RegressorMixin, TorchEstimatorBase):
    """Multi-output regression from token embeddings with a V-JEPA-style attentive probe.

    One learnable query cross-attends (multi-head, qkv bias, fused
    ``F.scaled_dot_product_attention``) over the LayerNorm'd tokens; a residual MLP refines the
    query and a linear head maps it to the targets. The targets are transformed (optionally, e.g.
    ``log10`` for Reynolds-like parameters) and standardized inside ``fit``; predictions come back in
    the original units. The defaults are the JEPA paper's probe recipe: AdamW with lr 1e-3 and
    weight decay 0.01, a cosine schedule with linear warmup, 100 epochs, MSE loss.

    Parameters
    ----------
    mlp_ratio : float, default=12.0
        Hidden width of the residual MLP relative to the token width (paper: 12 for JEPA width
        128, 0.25 for VideoMAE width 384).
    n_heads : int, default=8
        Attention heads. When the token width is not divisible by it, the largest divisor of the
        width below ``n_heads`` is used (stored in ``n_heads_``).
    target_transform : {None, "log10", "log"} or tuple of two callables, default=None
        Applied to the target columns named by ``transform_columns`` before standardization;
        a tuple is ``(func, inverse_func)``, both elementwise on numpy arrays.
    transform_columns : None or sequence of int, default=None
        Target columns ``target_transform`` applies to; ``None`` means all columns.
    train_fraction : float in (0, 1], default=1.0
        Fit on a random fraction of the training rows drawn with ``random_state`` (the paper's
        labelled-fraction protocol: grid-search it in a ``Pipeline``).
    max_epochs : int, default=100
    batch_size : int, default=64
    lr : float, default=1e-3
    weight_decay : float, default=0.01
    warmup_epochs : int, default=10
        Linear warmup epochs of the cosine schedule; capped at ``max_epochs // 10`` for short runs.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available (bf16 autocast there).
    random_state : int, RandomState instance or None, default=None
        Seeds the probe initialisation, the batch order and the ``train_fraction`` subset.
    verbose : int, default=0
        1 shows a progress bar with the loss per epoch; 2 also prints one line per epoch.
    checkpoint_dir : str or path-like, default=None
        Write the full training state there after every epoch and resume from it (see
        :class:`skphys.JEPAEmbedder`).
    callbacks : list of skorch callbacks, default=None
        skorch callbacks, called with the estimator as ``net``.

    Attributes
    ----------
    module_ : torch.nn.Module
        The fitted :class:`skphys.nn.attentive_pooler.AttentiveHead` (stored on the CPU when pickled).
    n_features_in_ : int
        Token width (the last axis of ``X``).
    n_outputs_ : int
        Number of targets.
    n_heads_ : int
        Attention heads actually used.
    y_mean_, y_scale_ : ndarray of shape (n_outputs_,)
        Standardization of the transformed targets learned in ``fit``.
    train_indices_ : ndarray
        Rows of the training set used (``train_fraction``).
    history_ : list of dict
        Training loss and LR per epoch.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import AttentiveProbeRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(64, 5, 8)).astype("float32")   # 64 samples, 5 tokens of width 8
    >>> y = X.mean(axis=(1, 2))
    >>> probe = AttentiveProbeRegressor(max_epochs=5, mlp_ratio=2, random_state=0).fit(X, y)
    >>> probe.predict(X).shape
    (64,)
    """

    _parameter_constraints = {
        "mlp_ratio": [Interval(numbers.Real, 0, None, closed="neither")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "target_transform": [None, StrOptions(set(_TRANSFORMS)), tuple],
        "transform_columns": [None, "array-like"],
        "train_fraction": [Interval(numbers.Real, 0, 1, closed="right")],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        mlp_ratio: float = 12.0,
        n_heads: int = 8,
        target_transform: str | tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]] | None = None,
        transform_columns: Sequence[int] | None = None,
        train_fraction: float = 1.0,
        max_epochs: int = 100,
        batch_size: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_epochs: int = 10,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> None:
        self.mlp_ratio = mlp_ratio
        self.n_heads = n_heads
        self.target_transform = target_transform
        self.transform_columns = transform_columns
        self.train_fraction = train_fraction
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.warmup_epochs = warmup_epochs
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    # ------------------------------------------------------------------ input checks
    def _check_X(self, X, reset):
        X = check_array(X, allow_nd=True, dtype=np.float32, ensure_min_samples=1, input_name="X")
        if X.ndim not in (2, 3):
            raise ValueError(
                f"X must be (n_samples, n_tokens, dim) or (n_samples, dim); got {X.ndim} dimensions {X.shape}"
            )
        if X.ndim == 3 and X.shape[1] < 1:
            raise ValueError(f"X has no tokens (shape {X.shape})")
        dim = X.shape[-1]
        if reset:
            self.n_features_in_ = dim
        elif dim != self.n_features_in_:
            raise ValueError(
                f"X has {dim} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X if X.ndim == 3 else X[:, None, :]

    def _transform_funcs(self):
        tt = self.target_transform
        if tt is None:
            return None
        if isinstance(tt, str):
            return _TRANSFORMS[tt]
        if len(tt) != 2 or not all(callable(f) for f in tt):
            raise TypeError("target_transform must be None, 'log10', 'log' or a tuple (func, inverse_func) of callables")
        return tt

    def _columns(self, n_outputs):
        if self.transform_columns is None:
            return np.arange(n_outputs)
        cols = np.asarray(self.transform_columns)
        if cols.ndim != 1 or not np.issubdtype(cols.dtype, np.integer):
            raise TypeError(f"transform_columns must be a sequence of int column indices, got {self.transform_columns!r}")
        if cols.size and (cols.min() < -n_outputs or cols.max() >= n_outputs):
            raise ValueError(f"transform_columns {cols.tolist()} out of range for y with {n_outputs} columns")
        return cols % n_outputs

    def _forward_target(self, y):
        """Apply ``target_transform`` to the chosen columns (float64, 2-D)."""
        funcs = self._transform_funcs()
        y = np.array(y, dtype=np.float64, copy=True)
        if funcs is not None:
            cols = self._columns(y.shape[1])
            with np.errstate(all="ignore"):
                z = funcs[0](y[:, cols])
            if not np.isfinite(z).all():
                raise ValueError(
                    f"target_transform={self.target_transform!r} gave NaN/inf on target columns {cols.tolist()} "
                    "(e.g. log of non-positive values)"
                )
            y[:, cols] = z
        return y

    def _inverse_target(self, z):
        funcs = self._transform_funcs()
        if funcs is not None:
            cols = self._columns(z.shape[1])
            z[:, cols] = funcs[1](z[:, cols])
        return z

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike) -> "AttentiveProbeRegressor":
        """Fit the probe on token embeddings.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_tokens, dim) or (n_samples, dim)
            Embeddings, e.g. from :meth:`skphys.JEPAEmbedder.transform`.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : AttentiveProbeRegressor
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _check_fit_input(self, X, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        X = self._check_X(X, reset=True)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} samples but y has {y.shape[0]}; they must match")
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self._forward_target(y2)  # checks the transform on all rows
        rs = check_random_state(self.random_state)
        n = X.shape[0]
        n_train = max(1, int(round(self.train_fraction * n)))
        idx = np.sort(rs.permutation(n)[:n_train]) if n_train < n else np.arange(n)
        self.train_indices_ = idx
        return np.ascontiguousarray(X[idx]), y2[idx]

    def _setup(self, X, y):
        self.n_outputs_ = y.shape[1]
        z = self._forward_target(y)
        self.y_mean_ = z.mean(axis=0)
        scale = z.std(axis=0)
        self.y_scale_ = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self.y_mean_)), scale, 1.0)
        self.n_heads_ = _largest_divisor_at_most(X.shape[-1], self.n_heads)

    def _build_modules(self):
        return {"module_": AttentiveHead(self.n_features_in_, self.n_outputs_, n_heads=self.n_heads_, mlp_ratio=self.mlp_ratio)}

    def _make_sampler(self, X, y, device, seed, batch_size):
        zs = ((self._forward_target(y) - self.y_mean_) / self.y_scale_).astype(np.float32)
        return RowSampler([X, zs], device, seed, batch_size)

    def _loss(self, modules, batch, ctx):
        xb, yb = batch
        return torch.mean((modules["module_"](xb).float() - yb) ** 2), {}

    def _train_options(self):
        return {"schedule": "cosine", "warmup_epochs": min(self.warmup_epochs, self.max_epochs // 10)}

    def _predict_standardized(self, X):
        check_is_fitted(self)
        X = self._check_X(X, reset=False)
        device = self._runtime_device()
        module = self._module_on("module_", device)
        module.eval()
        out = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], 256):
                xb = torch.from_numpy(np.array(X[start : start + 256])).to(device)
                with autocast(device):
                    out.append(module(xb).float().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_tokens, dim) or (n_samples, dim)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        z = self._predict_standardized(X) * self.y_scale_ + self.y_mean_
        y = self._inverse_target(z)
        return y[:, 0] if self._y_1d else y

    def transform_target(self, y: ArrayLike) -> np.ndarray:
        """Targets as the probe sees them: ``target_transform`` then the standardization from fit.

        The JEPA paper's metric is the MSE between :meth:`predict_standardized` and this.
        """
        check_is_fitted(self)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y").reshape(-1, self.n_outputs_)
        return (self._forward_target(y) - self.y_mean_) / self.y_scale_

    def predict_standardized(self, X: ArrayLike) -> np.ndarray:
        """Predictions in the transformed, standardized target space, shape (n_samples, n_outputs)."""
        return self._predict_standardized(X)

    def standardized_mse(self, X: ArrayLike, y: ArrayLike) -> float:
        """Paper metric: MSE on transformed, standardized targets, averaged over the targets."""
        return float(np.mean((self.predict_standardized(X) - self.transform_target(y)) ** 2))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = True
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
