"""VideoMAE embedder: a masked-autoencoder ViT pretrained on physical trajectories."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import (
    TRAINING_CONSTRAINTS,
    TorchEstimatorBase,
    autocast,
    channel_stats,
    check_trajectories,
    iter_batches,
    normalized_batch,
    torch_generator,
    torch_seed,
)
from ._sampling import NOISE, WindowSampler
from ._training import step_seed
from .nn.vit import VideoMAE

__all__ = ["VideoMAEEmbedder"]

_WHO = "VideoMAEEmbedder"


def _videomae_tokens(module, x, pooling="tokens"):
    tok = module(x)
    return tok.mean(dim=1) if pooling == "mean" else tok


class VideoMAEEmbedder(TransformerMixin, TorchEstimatorBase):
    """Masked-autoencoder video transformer (VideoMAE) for spatiotemporal physical fields.

    A ViT with tubelet patch embedding (``tubelet_size x patch_size x patch_size``) and fixed 3-D
    sinusoidal positions is pretrained by tube masking (the same random spatial mask for every
    frame, ``mask_ratio`` of the patches hidden) and a light transformer decoder that reconstructs
    the per-patch normalized values of every physical channel of the masked patches. The
    defaults are the JEPA paper's ViT-S/16 (width 384, depth 12, 6 heads; decoder 192 wide,
    4 deep). Fields are normalized per channel with statistics learned in ``fit``. ``fit``
    draws one random ``n_frames`` window from every trajectory per epoch; ``transform`` encodes
    the first ``n_frames`` frames of each trajectory with no masking.

    Parameters
    ----------
    n_frames : int, default=16
        Frames per window; a multiple of ``tubelet_size``.
    patch_size : int, default=16
        Spatial patch size; every spatial axis must be a multiple of it (for 1-D systems the
        patch is ``1 x patch_size``).
    tubelet_size : int, default=2
        Temporal patch size.
    embed_dim : int, default=384
        Encoder width (the width of the returned tokens).
    depth : int, default=12
        Number of encoder blocks.
    n_heads : int, default=6
        Encoder attention heads; must divide ``embed_dim``.
    mlp_ratio : float, default=4.0
        Hidden width of the MLPs relative to the block width.
    decoder_embed_dim : int, default=192
        Decoder width.
    decoder_depth : int, default=4
        Number of decoder blocks.
    decoder_n_heads : int, default=3
        Decoder attention heads; must divide ``decoder_embed_dim``.
    mask_ratio : float, default=0.9
        Fraction of the spatial patches hidden (tube masking); at least one patch stays visible.
    pooling : {"tokens", "mean"}, default="tokens"
        ``"tokens"``: ``transform`` returns all tokens ``(n_samples, n_tokens, embed_dim)``.
        ``"mean"``: the mean token ``(n_samples, embed_dim)``.
    normalize : bool, default=True
        Standardize each physical channel with its mean and std over the training set.
    max_epochs : int, default=20
        Pretraining epochs (one random window per trajectory and epoch).
    batch_size : int, default=8
        Windows per optimisation step; also the batch size of ``transform``.
    lr : float, default=1.5e-4
        Peak AdamW learning rate (cosine schedule, betas (0.9, 0.95)).
    weight_decay : float, default=0.05
        AdamW weight decay.
    warmup_epochs : int, default=0
        Linear LR warmup epochs before the cosine decay.
    device : str or torch.device, default="auto"
        ``"auto"`` uses CUDA when available (with bf16 autocast), else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the windows and the masks: ``fit`` is reproducible on a
        given device.
    verbose : int, default=0
        0 silent, 1 progress bar, 2 one line per epoch.
    checkpoint_dir : str or path-like, default=None
        Write the full training state there after every epoch (atomically) and resume from it
        when ``fit`` is called again with the same parameters and data (see
        :class:`skphys.JEPAEmbedder` and docs/scaling.md).
    callbacks : list of skorch callbacks, default=None
        skorch callbacks, called with the estimator as ``net``.

    Attributes
    ----------
    module_ : skphys.nn.vit.VideoMAE
        The fitted encoder and decoder.
    mean_, scale_ : ndarray of shape (n_channels,)
        Field normalization statistics (zeros and ones when ``normalize=False``).
    n_channels_ : int
        Number of physical channels seen in ``fit``.
    n_spatial_dims_ : int
        1 or 2.
    spatial_shape_ : tuple of int
        Spatial size seen in ``fit``; ``transform`` requires the same.
    token_grid_ : tuple of int
        Token grid ``(n_frames / tubelet, H / patch, W / patch)`` (``H`` is 1 for 1-D systems).
    n_tokens_ : int
        Tokens per window, the product of ``token_grid_``.
    history_ : skorch.history.History
        One record per epoch (``loss``, ``lr``, ``epoch``, ``dur``).

    See Also
    --------
    skphys.JEPAEmbedder : Joint-embedding predictive pretraining (latent prediction).
    skphys.AttentiveProbeRegressor : Probe that regresses parameters from the tokens.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import VideoMAEEmbedder
    >>> X = np.random.default_rng(0).normal(size=(6, 6, 8, 8, 2)).astype("float32")
    >>> emb = VideoMAEEmbedder(n_frames=4, patch_size=4, embed_dim=12, depth=1, n_heads=2,
    ...                        decoder_embed_dim=6, decoder_depth=1, decoder_n_heads=1,
    ...                        max_epochs=2, batch_size=3, device="cpu", random_state=0)
    >>> emb.fit_transform(X).shape
    (6, 8, 12)
    >>> emb.set_params(pooling="mean").transform(X).shape
    (6, 12)
    """

    _parameter_constraints = {
        "n_frames": [Interval(numbers.Integral, 1, None, closed="left")],
        "patch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "tubelet_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "embed_dim": [Interval(numbers.Integral, 6, None, closed="left")],
        "depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "mlp_ratio": [Interval(numbers.Real, 0, None, closed="neither")],
        "decoder_embed_dim": [Interval(numbers.Integral, 6, None, closed="left")],
        "decoder_depth": [Interval(numbers.Integral, 1, None, closed="left")],
        "decoder_n_heads": [Interval(numbers.Integral, 1, None, closed="left")],
        "mask_ratio": [Interval(numbers.Real, 0, 1, closed="left")],
        "pooling": [StrOptions({"tokens", "mean"})],
        "normalize": ["boolean"],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        n_frames: int = 16,
        patch_size: int = 16,
        tubelet_size: int = 2,
        embed_dim: int = 384,
        depth: int = 12,
        n_heads: int = 6,
        mlp_ratio: float = 4.0,
        decoder_embed_dim: int = 192,
        decoder_depth: int = 4,
        decoder_n_heads: int = 3,
        mask_ratio: float = 0.9,
        pooling: str = "tokens",
        normalize: bool = True,
        max_epochs: int = 20,
        batch_size: int = 8,
        lr: float = 1.5e-4,
        weight_decay: float = 0.05,
        warmup_epochs: int = 0,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> None:
        self.n_frames = n_frames
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.decoder_embed_dim = decoder_embed_dim
        self.decoder_depth = decoder_depth
        self.decoder_n_heads = decoder_n_heads
        self.mask_ratio = mask_ratio
        self.pooling = pooling
        self.normalize = normalize
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

    # ------------------------------------------------------------------ validation helpers
    def _check_sizes(self, shape):
        """Check the architecture against the data shape ``(n, T, *space, C)``."""
        if self.n_frames % self.tubelet_size:
            raise ValueError(
                f"{_WHO}: n_frames={self.n_frames} is not a multiple of tubelet_size={self.tubelet_size}"
            )
        if self.embed_dim % self.n_heads:
            raise ValueError(f"{_WHO}: embed_dim={self.embed_dim} is not divisible by n_heads={self.n_heads}")
        if self.decoder_embed_dim % self.decoder_n_heads:
            raise ValueError(
                f"{_WHO}: decoder_embed_dim={self.decoder_embed_dim} is not divisible by "
                f"decoder_n_heads={self.decoder_n_heads}"
            )
        space = tuple(int(s) for s in shape[2:-1])
        bad = [s for s in space if s % self.patch_size]
        if bad:
            raise ValueError(
                f"{_WHO}: spatial size {space} is not a multiple of patch_size={self.patch_size}; "
                "crop or resample the fields, or choose a patch size that divides them"
            )
        return space

    def _windows_tensor(self, batch, device):
        """``(n, T, *space, C)`` numpy -> normalized channels-first tensor on ``device``."""
        return normalized_batch(batch, self.mean_, self.scale_, device)

    # ------------------------------------------------------------------ scikit-learn API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> "VideoMAEEmbedder":
        """Pretrain the masked autoencoder on trajectories ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_frames_total, ny, nx, n_channels) or \
(n_samples, n_frames_total, n_points, n_channels)
            Trajectories with at least ``n_frames`` frames (or a lazy array-like).
        y : None
            Ignored.

        Returns
        -------
        self : VideoMAEEmbedder
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _check_fit_input(self, X, y):
        X = check_trajectories(
            X, spatial_dims=(1, 2), min_frames=self.n_frames, min_space=self.patch_size, estimator=_WHO
        )
        self._check_sizes(X.shape)
        return X, y

    def _setup(self, X, y):
        space = self._check_sizes(X.shape)
        n_ch = X.shape[-1]
        if self.normalize:
            self.mean_, self.scale_ = channel_stats(X, max(1, self.batch_size), estimator=_WHO)
        else:
            self.mean_, self.scale_ = np.zeros(n_ch), np.ones(n_ch)
        self.n_channels_ = int(n_ch)
        self.n_spatial_dims_ = len(space)
        self.spatial_shape_ = space
        p = self.patch_size
        grid_space = (1, space[0] // p) if len(space) == 1 else (space[0] // p, space[1] // p)
        self.token_grid_ = (self.n_frames // self.tubelet_size, *grid_space)
        self.n_tokens_ = int(math.prod(self.token_grid_))

    def _build_modules(self):
        module = VideoMAE(
            self.n_channels_,
            patch_size=self.patch_size,
            tubelet_size=self.tubelet_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            n_heads=self.n_heads,
            decoder_embed_dim=self.decoder_embed_dim,
            decoder_depth=self.decoder_depth,
            decoder_n_heads=self.decoder_n_heads,
            mlp_ratio=self.mlp_ratio,
            n_spatial_dims=self.n_spatial_dims_,
        )
        return {"module_": module}

    def _make_sampler(self, X, y, device, seed, batch_size):
        return WindowSampler(X, self.n_frames, self.mean_, self.scale_, device, seed, batch_size, _WHO)

    def _batches(self, sampler, epoch, first_step, rows, ctx):
        n_space = self.token_grid_[1] * self.token_grid_[2]
        gen = torch.Generator()
        for step, win in enumerate(sampler.batches(epoch, first_step, rows), start=first_step):
            # tube masks drawn for the global batch, so that they do not depend on the ranks
            gen.manual_seed(step_seed(sampler.plan.seed, NOISE, epoch, step))
            noise = torch.rand(sampler.plan.batch_size, n_space, generator=gen)[rows]
            yield win, noise.to(win.device)

    def _loss(self, modules, batch, ctx):
        win, noise = batch
        return modules["module_"].loss(win, mask_ratio=self.mask_ratio, mask_noise=noise), {}

    def _train_options(self):
        return {"betas": (0.9, 0.95), "schedule": "cosine", "warmup_epochs": self.warmup_epochs, "final_lr_ratio": 0.01}

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Encode the first ``n_frames`` frames of each trajectory (no masking).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_frames_total, *space, n_channels)
            Trajectories with the spatial size and channels seen in ``fit`` and at least
            ``n_frames`` frames (or a lazy array-like, read in batches).

        Returns
        -------
        tokens : ndarray of float32, shape (n_samples, n_tokens_, embed_dim), \
or (n_samples, embed_dim) with ``pooling="mean"``
        """
        check_is_fitted(self, "module_")
        if self.pooling not in ("tokens", "mean"):
            raise ValueError(f"{_WHO}: pooling must be 'tokens' or 'mean', got {self.pooling!r}")
        X = check_trajectories(
            X, spatial_dims=(len(self.spatial_shape_),), min_frames=self.n_frames,
            n_channels=self.n_channels_, estimator=_WHO,
        )
        space = tuple(int(s) for s in X.shape[2:-1])
        if space != tuple(self.spatial_shape_):
            raise ValueError(
                f"{_WHO}: X has spatial size {space} but the embedder was fitted on {tuple(self.spatial_shape_)}"
            )
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()

        def embed(batch):
            with autocast(device):
                tok = module(self._windows_tensor(batch[:, : self.n_frames], device)).float()
            return (tok.mean(dim=1) if self.pooling == "mean" else tok).cpu().numpy()

        return self._map_batches(X, embed)

    def reconstruction_loss(self, X: ArrayLike, random_state: int | np.random.RandomState | None = 0) -> float:
        """Mean masked-patch reconstruction MSE (per-patch normalized target) on ``X``.

        Uses the first ``n_frames`` frames and masks drawn from ``random_state``. A model that
        predicts zeros (the target's per-channel patch mean) scores 1.0.
        """
        check_is_fitted(self, "module_")
        X = check_trajectories(
            X, spatial_dims=(len(self.spatial_shape_),), min_frames=self.n_frames,
            n_channels=self.n_channels_, estimator=_WHO,
        )
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()
        gen = torch_generator(torch_seed(random_state), device=device)
        total, count = 0.0, 0
        with torch.inference_mode(), autocast(device):
            for _, batch in iter_batches(X, self.batch_size):
                x = self._windows_tensor(batch[:, : self.n_frames], device)
                total += float(module.loss(x, mask_ratio=self.mask_ratio, generator=gen)) * len(batch)
                count += len(batch)
        return total / count

    def _token_encoder(self):
        """The trainable map from raw windows to what ``transform`` returns (for
        :class:`skphys.FineTunedRegressor`)."""
        import functools

        from ._finetune import TokenEncoder

        check_is_fitted(self, "module_")
        return TokenEncoder(self.module_, self.mean_, self.scale_, self.n_frames,
                            functools.partial(_videomae_tokens, pooling=self.pooling))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
