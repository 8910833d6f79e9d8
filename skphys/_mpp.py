"""MPP embedder: an axial vision transformer (AViT) pretrained by next-frame prediction."""

from __future__ import annotations

import functools
import numbers

import numpy as np
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import TRAINING_CONSTRAINTS, NextFrameEmbedderBase, autocast, check_trajectories, normalized_batch
from ._sampling import WindowSampler
from .nn.avit import MPPModel, patch_factors

__all__ = ["MPPEmbedder", "normalized_mse"]

_WHO = "MPPEmbedder"


def normalized_mse(pred, target, eps=1e-7):
    """MPP's objective: per sample and channel, the MSE over space divided by the target's mean
    square over space; averaged over channels and samples. ``(N, C, *space)`` tensors."""
    dims = tuple(range(2, target.dim()))
    err = (pred.float() - target.float()).pow(2).mean(dim=dims)
    return (err / (target.float().pow(2).mean(dim=dims) + eps)).mean()


def _mpp_tokens(module, x, pooling="tokens"):
    z = module.tokens(x)
    return z.mean(dim=1) if pooling == "mean" else z


class MPPEmbedder(TransformerMixin, NextFrameEmbedderBase):
    """Multiple Physics Pretraining (MPP): an axial ViT trained to predict the next frame.

    The AViT of McCabe et al. (2023): every history window is normalized per sample and channel
    over time and space; a field embedding (one learned vector per physical field, so a sample may
    carry any subset of them) mixes the channels; a hierarchical-MLP stem (strided patch
    convolutions 4 x 2 x 2 ... with RMS instance norm) makes ``patch_size`` patches; each block
    runs attention over time, then axial attention over each spatial axis with weights shared by
    the axes, with continuous relative position biases that wrap around periodic boundaries; an
    MLP head (the transposed stem) decodes the last time step's tokens back to fields. The model
    is trained from ``n_frames`` history frames to predict the frame after them, with MPP's
    per-channel MSE normalized by the target's mean square. Fields are first standardized per
    channel with statistics learned in ``fit`` (the target's mean square is taken in those units).

    ``transform`` returns the tokens of the last time step of the first ``n_frames`` frames, the
    embedding the JEPA paper probes. Pretrained MPP weights cannot be downloaded here; the module
    layout follows the original closely but not name for name, so published checkpoints would
    need a key mapping to load into :class:`skphys.nn.avit.MPPModel`.

    Parameters
    ----------
    n_frames : int, default=16
        History length; ``fit`` needs trajectories of at least ``n_frames + 1`` frames.
    patch_size : int, default=16
        Patch size; every spatial axis must be a multiple of it (1-D systems: ``1 x patch_size``).
    embed_dim : int, default=192
        Token width (the paper's MPP-Ti/S uses 192/384).
    depth : int, default=12
        Space-time blocks.
    n_heads : int, default=3
        Attention heads; must divide ``embed_dim``.
    mlp_ratio : float, default=4.0
    boundary : {"periodic", "open"}, default="periodic"
        Whether the spatial relative position biases wrap around.
    residual : bool, default=True
        The head decodes the change from the last history frame (True; the model starts at
        persistence) or the next frame itself (False, as in the original).
    pooling : {"tokens", "mean"}, default="tokens"
        ``transform`` output: ``(n_samples, n_patches, embed_dim)`` tokens or their mean.
    max_epochs : int, default=20
        One epoch draws one random ``n_frames + 1`` window from every trajectory.
    batch_size : int, default=8
    lr : float, default=5e-4
    weight_decay : float, default=1e-3
    warmup_epochs : int, default=1
        Linear warmup of the cosine schedule (capped at ``max_epochs - 1``).
    device : str or torch.device, default="auto"
        ``"auto"``: CUDA when available (bf16 autocast and fused attention there), else CPU.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    checkpoint_dir : str or path-like, default=None
        Write the full training state there after every epoch and resume from it (see
        :class:`skphys.JEPAEmbedder`).
    callbacks : list of skorch callbacks, default=None

    Attributes
    ----------
    module_ : skphys.nn.avit.MPPModel
    mean_, scale_ : ndarray of shape (n_channels_,)
    n_channels_, n_spatial_dims_ : int
    spatial_shape_ : tuple of int
    n_patches_ : int
        Tokens per sample returned by ``transform``.
    history_ : skorch.history.History
        Per epoch: ``loss`` (normalized MSE), ``lr``, ``epoch``, ``dur``.

    See Also
    --------
    skphys.DISCOEmbedder, skphys.FineTunedRegressor

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import MPPEmbedder
    >>> X = np.random.default_rng(0).normal(size=(4, 5, 8, 8, 2)).astype("float32")
    >>> mpp = MPPEmbedder(n_frames=4, patch_size=4, embed_dim=16, depth=1, n_heads=2,
    ...                   max_epochs=1, batch_size=2, device="cpu", random_state=0).fit(X)
    >>> mpp.transform(X).shape           # 2 x 2 patches of width 16
    (4, 4, 16)
    >>> mpp.predict_next(X).shape        # the frame after the first 4
    (4, 8, 8, 2)
    """

    _parameter_constraints = {
        "n_frames": [Interval(numbers.Integral, 1, None, closed="left")],
        "patch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "embed_dim": [Interval(numbers.Integral, 4, None, closed="left")],
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "mlp_ratio": [Interval(numbers.Real, 0, None, closed="neither")],
        "boundary": [StrOptions({"periodic", "open"})],
        "residual": ["boolean"],
        "pooling": [StrOptions({"tokens", "mean"})],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        n_frames=16,
        patch_size=16,
        embed_dim=192,
        depth=12,
        n_heads=3,
        mlp_ratio=4.0,
        boundary="periodic",
        residual=True,
        pooling="tokens",
        max_epochs=20,
        batch_size=8,
        lr=5e-4,
        weight_decay=1e-3,
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
        self.boundary = boundary
        self.residual = residual
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
        space = tuple(int(s) for s in shape[2:-1])
        if any(s % self.patch_size for s in space):
            raise ValueError(
                f"{_WHO}: spatial size {space} is not a multiple of patch_size={self.patch_size}; "
                "crop or resample the fields, or choose a patch size that divides them"
            )
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

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pretrain the AViT by next-frame prediction on trajectories ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_frames_total, *space, n_channels)
            Trajectories with at least ``n_frames + 1`` frames (or a lazy array-like).
        y : None
            Ignored.

        Returns
        -------
        self : MPPEmbedder
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _setup(self, X, y):
        super()._setup(X, y)
        space = self.spatial_shape_
        self.n_patches_ = int(np.prod([s // self.patch_size for s in space]))

    def _build_modules(self):
        patch_factors(self.patch_size)
        return {"module_": MPPModel(
            self.n_channels_, patch_size=self.patch_size, embed_dim=self.embed_dim, depth=self.depth,
            n_heads=self.n_heads, mlp_ratio=self.mlp_ratio, n_spatial_dims=self.n_spatial_dims_,
            periodic=self.boundary == "periodic", residual=self.residual,
        )}

    def _make_sampler(self, X, y, device, seed, batch_size):
        return WindowSampler(X, self.n_frames + 1, self.mean_, self.scale_, device, seed, batch_size, _WHO)

    def _loss(self, modules, win, ctx):
        pred = modules["module_"](win[:, :, : self.n_frames])
        return normalized_mse(pred, win[:, :, self.n_frames]), {}

    def _train_options(self):
        return {"betas": (0.9, 0.95), "schedule": "cosine", "warmup_epochs": self.warmup_epochs, "final_lr_ratio": 0.01}

    # ------------------------------------------------------------------ outputs
    def transform(self, X):
        """Tokens of the last of the first ``n_frames`` frames of each trajectory.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels) with T >= n_frames

        Returns
        -------
        tokens : ndarray of shape (n_samples, n_patches_, embed_dim), or (n_samples, embed_dim)
            with ``pooling="mean"``.
        """
        X = self._check_X(X, self.n_frames)
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()

        def embed(batch):
            xb = normalized_batch(batch[:, : self.n_frames], self.mean_, self.scale_, device)
            with autocast(device):
                z = _mpp_tokens(module, xb, self.pooling)
            return z.float().cpu().numpy()

        return self._map_batches(X, embed)

    def predict_next(self, X):
        """The frame after the first ``n_frames`` frames of each trajectory, in the units of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels) with T >= n_frames

        Returns
        -------
        frames : ndarray of shape (n_samples, *space, n_channels)
        """
        X = self._check_X(X, self.n_frames)
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()

        def step(batch):
            xb = normalized_batch(batch[:, : self.n_frames], self.mean_, self.scale_, device)
            with autocast(device):
                y = module(xb).float()
            return y.movedim(1, -1).cpu().numpy() * self.scale_ + self.mean_

        return self._map_batches(X, step).astype(np.float32)

    def _token_encoder(self):
        """The trainable map from raw windows to what ``transform`` returns (for fine-tuning)."""
        from ._finetune import TokenEncoder

        check_is_fitted(self, "module_")
        return TokenEncoder(self.module_, self.mean_, self.scale_, self.n_frames,
                            functools.partial(_mpp_tokens, pooling=self.pooling))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
