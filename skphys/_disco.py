"""DISCO embedder: a transformer hypernetwork that infers a trajectory's evolution operator."""

from __future__ import annotations

import functools
import numbers

import numpy as np
import torch
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import TRAINING_CONSTRAINTS, NextFrameEmbedderBase, autocast, check_trajectories, normalized_batch
from ._sampling import WindowSampler
from .nn.avit import patch_factors
from .nn.disco import DISCOHypernetwork, OperatorUNet, integrate

__all__ = ["DISCOEmbedder"]

_WHO = "DISCOEmbedder"
_EPS = 1e-5
_MIN_VAR = 1e-2  # a target with less variance than 1% of its context's is treated as constant


def _context_normalize(x, n_frames):
    """Normalize a window ``(N, C, T, *space)`` by the statistics of its first ``n_frames``
    frames (per sample and channel); returns the normalized window, mean and std."""
    ctx = x[:, :, :n_frames]
    dims = tuple(range(2, x.dim()))
    mu = ctx.mean(dim=dims, keepdim=True)
    sd = ctx.std(dim=dims, keepdim=True, unbiased=False) + _EPS
    return (x - mu) / sd, mu, sd


def _disco_tokens(module, x, n_frames, pooling="mean"):
    xn, _, _ = _context_normalize(x, n_frames)
    theta = module.latent(xn)
    return theta[:, None] if pooling == "tokens" else theta


class DISCOEmbedder(TransformerMixin, NextFrameEmbedderBase):
    """DISCO: a hypernetwork infers a small operator network from a context; its time
    integration predicts the next frame. The embedding is the hypernetwork's theta-latent.

    Following Morel, Han and Oyallon (ICML 2025): each context of ``n_frames`` frames is normalized
    per sample and channel by its own statistics; a field adapter (1x1 convolution) and a CNN
    that downsamples space by ``patch_size`` make tokens; space-time transformer blocks (attention
    over time, then axial attention over each spatial axis, with QK-norm, continuous relative
    position biases that wrap around periodic boundaries, and layer scale) process them; their mean
    over time and space is the theta-latent (``embed_dim``). An MLP with one linear head per
    weight tensor maps theta to **all** weights of a small operator network: a two-level U-Net
    without biases, with grouped convolutions and affine-free group norms, and circular
    (``boundary="periodic"``) or zero (``"walls"``) padding. The operator is integrated from the
    context's last frame over one frame interval with torchdiffeq's adaptive Bogacki-Shampine
    solver (``bosh3``, adjoint gradients), and the prediction is scored against the next frame,
    both in the context-normalized units, with an MSE divided by the target's variance (per
    channel). The operator's output layer starts near zero (the initial model is close to persistence).

    Each sample is integrated on its own, so its step sizes do not depend on the other samples
    of the batch (nor on the number of processes). ``history_`` records the mean solver steps per
    sample in each epoch (``solver_steps``) and the fraction of samples that hit
    ``max_solver_steps`` (``solver_capped``; they are integrated again with ``max_solver_steps``
    fixed Runge-Kutta steps). Pretrained DISCO weights cannot be downloaded here; the module names
    differ from the original code, so a published checkpoint would need a key mapping.

    Parameters
    ----------
    n_frames : int, default=16
        Context length; ``fit`` needs trajectories of at least ``n_frames + 1`` frames.
    patch_size : int, default=16
        Spatial downsampling of the hypernetwork's CNN; every spatial axis must be a multiple of
        it (and even, for the operator's downsampling).
    embed_dim : int, default=384
        Width of the transformer and of the theta-latent.
    depth : int, default=12
    n_heads : int, default=6
        Must divide ``embed_dim``.
    mlp_ratio : float, default=4.0
    layer_scale : float, default=0.1
        Initial layer-scale value.
    operator_width : int, default=8
        Channels of the operator U-Net's first level (twice that on the second); the original
        operator is as narrow.
    operator_groups : int, default=4
        Groups of the operator's hidden convolutions and group norms; divides ``operator_width``.
    boundary : {"periodic", "walls"}, default="periodic"
    rtol, atol : float, default=1e-3, 1e-4
        Tolerances of the adaptive solver.
    max_solver_steps : int, default=32
        Bound on the solver steps per sample (the cost of a sample grows with them).
    adjoint : bool, default=True
        Gradients through the solver from the adjoint equation (as in DISCO: memory independent
        of the number of steps), or by backpropagating through the solver's steps (False: about
        3x faster on the CPU at tiny sizes, memory grows with the steps).
    pooling : {"mean", "tokens"}, default="mean"
        ``transform`` output: theta ``(n_samples, embed_dim)`` or ``(n_samples, 1, embed_dim)``.
    max_epochs : int, default=20
        One epoch draws one random ``n_frames + 1`` window from every trajectory.
    batch_size : int, default=8
    lr : float, default=3e-4
    weight_decay : float, default=0.01
    warmup_epochs : int, default=1
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available; the hypernetwork runs under bf16 autocast there, the
        operator and the solver always in float32.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    checkpoint_dir : str or path-like, default=None
        See :class:`skphys.JEPAEmbedder`.
    callbacks : list of skorch callbacks, default=None

    Attributes
    ----------
    module_ : skphys.nn.disco.DISCOHypernetwork
    mean_, scale_ : ndarray of shape (n_channels_,)
        Dataset-wide standardization applied before the per-context normalization.
    n_channels_, n_spatial_dims_ : int
    spatial_shape_ : tuple of int
    history_ : skorch.history.History
        Per epoch: ``loss``, ``solver_steps``, ``solver_capped``, ``lr``, ``epoch``, ``dur``.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import DISCOEmbedder
    >>> X = np.random.default_rng(0).normal(size=(4, 5, 8, 8, 2)).astype("float32")
    >>> disco = DISCOEmbedder(n_frames=4, patch_size=4, embed_dim=16, depth=1, n_heads=2,
    ...                       operator_width=4, operator_groups=2, max_epochs=1, batch_size=2,
    ...                       device="cpu", random_state=0).fit(X)
    >>> disco.transform(X).shape
    (4, 16)
    >>> disco.predict_next(X).shape
    (4, 8, 8, 2)
    """

    _parameter_constraints = {
        "n_frames": [Interval(numbers.Integral, 1, None, closed="left")],
        "patch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "embed_dim": [Interval(numbers.Integral, 4, None, closed="left")],
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "mlp_ratio": [Interval(numbers.Real, 0, None, closed="neither")],
        "layer_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "operator_width": [Interval(numbers.Integral, 1, None, closed="left")],
        "operator_groups": [Interval(numbers.Integral, 1, None, closed="left")],
        "boundary": [StrOptions({"periodic", "walls"})],
        "rtol": [Interval(numbers.Real, 0, None, closed="neither")],
        "atol": [Interval(numbers.Real, 0, None, closed="neither")],
        "max_solver_steps": [Interval(numbers.Integral, 1, None, closed="left")],
        "adjoint": ["boolean"],
        "pooling": [StrOptions({"tokens", "mean"})],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        n_frames=16,
        patch_size=16,
        embed_dim=384,
        depth=12,
        n_heads=6,
        mlp_ratio=4.0,
        layer_scale=0.1,
        operator_width=8,
        operator_groups=4,
        boundary="periodic",
        rtol=1e-3,
        atol=1e-4,
        max_solver_steps=32,
        adjoint=True,
        pooling="mean",
        max_epochs=20,
        batch_size=8,
        lr=3e-4,
        weight_decay=0.01,
        warmup_epochs=1,
        device="auto",
        random_state=None,
        verbose=0,
        checkpoint_dir=None,
        callbacks=None,
    ):
        self.n_frames = n_frames
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.layer_scale = layer_scale
        self.operator_width = operator_width
        self.operator_groups = operator_groups
        self.boundary = boundary
        self.rtol = rtol
        self.atol = atol
        self.max_solver_steps = max_solver_steps
        self.adjoint = adjoint
        self.pooling = pooling
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

    # ------------------------------------------------------------------ checks
    def _check_sizes(self, shape):
        if self.embed_dim % self.n_heads:
            raise ValueError(f"{_WHO}: embed_dim={self.embed_dim} is not divisible by n_heads={self.n_heads}")
        if self.operator_width % self.operator_groups:
            raise ValueError(
                f"{_WHO}: operator_width={self.operator_width} is not divisible by operator_groups={self.operator_groups}"
            )
        space = tuple(int(s) for s in shape[2:-1])
        if any(s % self.patch_size for s in space):
            raise ValueError(
                f"{_WHO}: spatial size {space} is not a multiple of patch_size={self.patch_size}; "
                "crop or resample the fields, or choose a patch size that divides them"
            )
        if any(s < 2 for s in space):
            raise ValueError(f"{_WHO}: spatial size {space} is too small: each axis needs at least 2 points")
        return space

    def _check_X(self, X, min_frames):
        check_is_fitted(self, "module_")
        X = check_trajectories(
            X, spatial_dims=(self.n_spatial_dims_,), min_frames=min_frames, n_channels=self.n_channels_, estimator=_WHO
        )
        space = tuple(int(s) for s in X.shape[2:-1])
        if space != tuple(self.spatial_shape_):
            raise ValueError(f"{_WHO}: X has spatial size {space} but the embedder was fitted on {tuple(self.spatial_shape_)}")
        return X

    def _operator(self):
        return OperatorUNet(self.n_channels_, self.operator_width, self.operator_groups,
                            periodic=self.boundary == "periodic", one_d=self.n_spatial_dims_ == 1)

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the hypernetwork by next-frame prediction through the integrated operator.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_frames_total, *space, n_channels)
            Trajectories with at least ``n_frames + 1`` frames (or a lazy array-like).
        y : None
            Ignored.

        Returns
        -------
        self : DISCOEmbedder
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _build_modules(self):
        patch_factors(self.patch_size)
        return {"module_": DISCOHypernetwork(
            self.n_channels_, self._operator(), patch_size=self.patch_size, embed_dim=self.embed_dim,
            depth=self.depth, n_heads=self.n_heads, mlp_ratio=self.mlp_ratio, n_spatial_dims=self.n_spatial_dims_,
            periodic=self.boundary == "periodic", layer_scale=self.layer_scale,
        )}

    def _make_sampler(self, X, y, device, seed, batch_size):
        return WindowSampler(X, self.n_frames + 1, self.mean_, self.scale_, device, seed, batch_size, _WHO)

    def _predict(self, module, win, adjoint):
        """Next frame of each normalized window ``(N, C, >=n_frames, *space)`` in the
        context-normalized units; returns ``(pred, normalized window, mean, std, steps, capped)``."""
        xn, mu, sd = _context_normalize(win, self.n_frames)
        ctx = xn[:, :, : self.n_frames]
        theta = module.latent(ctx)
        weights = module.weights(theta)
        op = module.operator
        one_d = win.dim() == 4
        preds, steps, capped = [], [], []
        with torch.autocast(win.device.type, enabled=False):
            for i in range(win.shape[0]):
                u0 = ctx[i : i + 1, :, -1].float()
                u0 = u0.unsqueeze(2) if one_d else u0
                u1, s, c = integrate(op, u0, {k: v[i] for k, v in weights.items()}, rtol=self.rtol, atol=self.atol,
                                     max_steps=self.max_solver_steps, adjoint=adjoint)
                preds.append(u1.squeeze(2) if one_d else u1)
                steps.append(s)
                capped.append(c)
        return torch.cat(preds), xn, mu, sd, steps, capped

    def _loss(self, modules, win, ctx):
        pred, xn, _, _, steps, capped = self._predict(modules["module_"], win, adjoint=self.adjoint)
        target = xn[:, :, self.n_frames].float()
        dims = tuple(range(2, target.dim()))
        var = target.var(dim=dims, unbiased=False)
        loss = ((pred - target).pow(2).mean(dim=dims) / var.clamp_min(_MIN_VAR)).mean()
        dev = win.device
        return loss, {
            "solver_steps": torch.tensor(float(np.mean(steps)), device=dev),
            "solver_capped": torch.tensor(float(np.mean(capped)), device=dev),
        }

    def _train_options(self):
        return {"betas": (0.9, 0.95), "schedule": "cosine", "warmup_epochs": self.warmup_epochs, "final_lr_ratio": 0.01}

    # ------------------------------------------------------------------ outputs
    def transform(self, X):
        """theta-latent of the first ``n_frames`` frames of each trajectory.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels) with T >= n_frames

        Returns
        -------
        theta : ndarray of shape (n_samples, embed_dim), or (n_samples, 1, embed_dim) with
            ``pooling="tokens"``.
        """
        X = self._check_X(X, self.n_frames)
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()

        def embed(batch):
            xb = normalized_batch(batch[:, : self.n_frames], self.mean_, self.scale_, device)
            with autocast(device):
                z = _disco_tokens(module, xb, self.n_frames, self.pooling)
            return z.float().cpu().numpy()

        return self._map_batches(X, embed)

    def predict_next(self, X, return_steps=False):
        """The frame after the first ``n_frames`` frames of each trajectory, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels) with T >= n_frames
        return_steps : bool, default=False
            Also return the solver steps taken for each sample.

        Returns
        -------
        frames : ndarray of shape (n_samples, *space, n_channels)
        steps : ndarray of int, shape (n_samples,)
            Only with ``return_steps``.
        """
        X = self._check_X(X, self.n_frames)
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()
        all_steps = []

        def step(batch):
            xb = normalized_batch(batch[:, : self.n_frames], self.mean_, self.scale_, device)
            with autocast(device):
                pred, _, mu, sd, steps, _ = self._predict(module, xb, adjoint=False)
            all_steps.extend(steps)
            y = pred * sd[:, :, 0] + mu[:, :, 0]
            return y.float().movedim(1, -1).cpu().numpy() * self.scale_ + self.mean_

        out = self._map_batches(X, step).astype(np.float32)
        return (out, np.asarray(all_steps)) if return_steps else out

    def _token_encoder(self):
        """The trainable map from raw windows to what ``transform`` returns (for fine-tuning)."""
        from ._finetune import TokenEncoder

        check_is_fitted(self, "module_")
        return TokenEncoder(self.module_, self.mean_, self.scale_, self.n_frames,
                            functools.partial(_disco_tokens, n_frames=self.n_frames, pooling=self.pooling))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
