"""JEPA embedder: a ConvNeXt 3-D encoder pretrained by predicting the next window's embedding."""

from __future__ import annotations

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

from ._base import TRAINING_CONSTRAINTS, TorchEstimatorBase, autocast, check_trajectories, normalized_batch, channel_stats
from ._distributed import all_gather_with_grad
from ._sampling import NOISE, WindowSampler
from ._training import step_seed
from .nn.convnext3d import ConvNeXtEncoder3d, JEPAPredictor, check_input_size, min_frames
from .nn.depthwise import IMPLS
from .nn.jepa import jepa_loss

__all__ = ["JEPAEmbedder"]


def _jepa_tokens(encoder, x, pooling="tokens"):
    z = encoder(x).float().flatten(2).transpose(1, 2)  # (b, tokens, width)
    return z.mean(dim=1) if pooling == "mean" else z


class JEPAEmbedder(TransformerMixin, TorchEstimatorBase):
    """Joint-embedding predictive architecture for spatiotemporal fields (ConvNeXt 3-D + VICReg).

    ``fit`` draws pairs of consecutive ``n_frames``-frame windows (context, target) from each
    trajectory, encodes both with the same encoder, predicts the target's embedding from the
    context's with a small convolutional predictor, and minimises the VICReg loss between the
    prediction and the target embedding (no EMA, no stop-gradient, as in the paper). Fields are
    normalized per channel with statistics learned in ``fit``. ``transform`` encodes the first
    ``n_frames`` frames of each trajectory.

    The defaults are the paper's architecture (2.5 M encoder and 0.8 M predictor parameters at
    4 channels), VICReg coefficients (2, 40, 2) and pretraining recipe (AdamW, betas (0.9, 0.95),
    weight decay 0.05, cosine schedule to 1e-6 after a linear warmup that is actually applied,
    shear-flow lr 1e-4 and 6 epochs). Smaller ``widths``/``depths`` give tiny CPU models.

    Parameters
    ----------
    n_frames : int, default=16
        Window length. Each of the ``len(widths) - 1`` downsampling stages halves time, so it must
        be a multiple of ``2 ** (len(widths) - 1)`` (16 for the default architecture, giving a single
        output frame); ``fit`` needs trajectories of at least ``2 * n_frames`` frames.
    widths : tuple of int, default=(16, 32, 64, 128, 128)
        Width of each stage; the embedding width is ``widths[-1]``.
    depths : tuple of int, default=(3, 3, 3, 9, 3)
        ConvNeXt blocks per stage.
    predictor_width : int, default=256
        Hidden width of the predictor.
    sim_coeff, std_coeff, cov_coeff : float, default=2.0, 40.0, 2.0
        VICReg lambda (invariance), mu (variance) and nu (covariance).
    vicreg_chunks : int, default=5
        Token rows are shuffled and split into this many chunks whose losses are averaged.
    pooling : {"tokens", "mean"}, default="tokens"
        ``transform`` output: ``(n_samples, n_tokens, width)`` tokens or their mean
        ``(n_samples, width)``.
    input_noise : float, default=0.0
        Std of Gaussian noise added to the normalized inputs during pretraining (the paper adds
        std 1.0 to raw fields for shear flow and active matter).
    dw_impl : {"auto", "conv3d", "conv2d", "fft"}, default="auto"
        Depthwise-convolution formulation (all exact), see :mod:`skphys.nn.depthwise`.
    max_epochs : int, default=6
        One epoch draws one window pair from every trajectory.
    batch_size : int, default=8
    lr : float, default=1e-4
    weight_decay : float, default=0.05
    warmup_epochs : int, default=1
        Linear LR warmup (capped at ``max_epochs - 1``).
    device : str, default="auto"
        ``"auto"``: CUDA when available (bf16 autocast there), else CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, window sampling and noise.
    verbose : int, default=0
        1 shows a progress bar with the loss per epoch; 2 also prints one line per epoch.
    checkpoint_dir : str or path-like, default=None
        Write the full training state there after every epoch (atomically), and resume from the
        newest checkpoint when ``fit`` is called again with the same parameters and data: a fit
        killed by a scheduler loses at most one epoch. SIGTERM and SIGUSR1 write a checkpoint and
        stop the fit cleanly. See docs/scaling.md.
    callbacks : list of skorch callbacks, default=None
        skorch callbacks (``PrintLog``, ``EarlyStopping(monitor="loss")``, loggers), called with
        the estimator as ``net`` and ``net.history`` a skorch ``History``.

    Attributes
    ----------
    encoder_ : ConvNeXtEncoder3d
    predictor_ : JEPAPredictor
    mean_, scale_ : ndarray of shape (n_channels_,)
        Per-channel normalization learned in ``fit``.
    n_channels_ : int
    n_spatial_dims_ : int
        1 or 2.
    history_ : skorch.history.History
        Per epoch (a list of dicts): ``loss``, ``inv``, ``var``, ``cov``, ``lr``, ``epoch``, ``dur``.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import JEPAEmbedder
    >>> X = np.random.default_rng(0).normal(size=(4, 8, 8, 8, 2)).astype("float32")
    >>> jepa = JEPAEmbedder(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8,
    ...                     max_epochs=1, batch_size=2, random_state=0).fit(X)
    >>> jepa.transform(X).shape          # 4 samples, 1 x 2 x 2 tokens of width 8
    (4, 4, 8)
    """

    _parameter_constraints = {
        "n_frames": [Interval(numbers.Integral, 1, None, closed="left")],
        "widths": ["array-like"],
        "depths": ["array-like"],
        "predictor_width": [Interval(numbers.Integral, 1, None, closed="left")],
        "sim_coeff": [Interval(numbers.Real, 0, None, closed="left")],
        "std_coeff": [Interval(numbers.Real, 0, None, closed="left")],
        "cov_coeff": [Interval(numbers.Real, 0, None, closed="left")],
        "vicreg_chunks": [Interval(numbers.Integral, 1, None, closed="left")],
        "pooling": [StrOptions({"tokens", "mean"})],
        "input_noise": [Interval(numbers.Real, 0, None, closed="left")],
        "dw_impl": [StrOptions(set(IMPLS))],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        n_frames: int = 16,
        widths: Sequence[int] = (16, 32, 64, 128, 128),
        depths: Sequence[int] = (3, 3, 3, 9, 3),
        predictor_width: int = 256,
        sim_coeff: float = 2.0,
        std_coeff: float = 40.0,
        cov_coeff: float = 2.0,
        vicreg_chunks: int = 5,
        pooling: str = "tokens",
        input_noise: float = 0.0,
        dw_impl: str = "auto",
        max_epochs: int = 6,
        batch_size: int = 8,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        warmup_epochs: int = 1,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> None:
        self.n_frames = n_frames
        self.widths = widths
        self.depths = depths
        self.predictor_width = predictor_width
        self.sim_coeff = sim_coeff
        self.std_coeff = std_coeff
        self.cov_coeff = cov_coeff
        self.vicreg_chunks = vicreg_chunks
        self.pooling = pooling
        self.input_noise = input_noise
        self.dw_impl = dw_impl
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

    # ------------------------------------------------------------------ helpers
    def _arch(self):
        widths = tuple(int(w) for w in np.atleast_1d(self.widths))
        depths = tuple(int(d) for d in np.atleast_1d(self.depths))
        if len(widths) == 0 or len(widths) != len(depths):
            raise ValueError(f"widths and depths must be non-empty and of equal length, got {self.widths} and {self.depths}")
        if min(widths) < 1 or min(depths) < 0:
            raise ValueError(f"widths must be >= 1 and depths >= 0, got {widths} and {depths}")
        return widths, depths

    def _check_sizes(self, X, n_stages):
        space = tuple(X.shape[2:-1])
        try:
            check_input_size(self.n_frames, space, n_stages)
        except ValueError as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from None

    # ------------------------------------------------------------------ API
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> "JEPAEmbedder":
        """Pretrain the encoder and predictor on trajectories ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_frames_total, n_points, n_channels) or (n_samples, n_frames_total, ny, nx, n_channels)
            Trajectories with at least ``2 * n_frames`` frames (or a lazy array-like, read in
            batches).
        y : ignored

        Returns
        -------
        self : JEPAEmbedder
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _check_fit_input(self, X, y):
        who = type(self).__name__
        widths, _ = self._arch()
        n_stages = len(widths)
        f = min_frames(n_stages)
        if self.n_frames % f:
            raise ValueError(
                f"{who}: n_frames={self.n_frames} does not fit {n_stages} stages: it must be a multiple of {f} "
                f"(minimum {f}) so that time is halved exactly {n_stages - 1} times; use fewer stages or longer windows"
            )
        X = check_trajectories(X, estimator=who, allow_lazy=True)
        if X.shape[1] < 2 * self.n_frames:
            raise ValueError(
                f"{who}.fit: X has {X.shape[1]} frames but at least 2 * n_frames = {2 * self.n_frames} are needed "
                "(a context window and the target window after it)"
            )
        self._check_sizes(X, n_stages)
        return X, y

    def _setup(self, X, y):
        self.n_channels_ = X.shape[-1]
        self.n_spatial_dims_ = len(X.shape) - 3
        self.mean_, self.scale_ = channel_stats(X, estimator=type(self).__name__)

    def _build_modules(self):
        widths, depths = self._arch()
        encoder = ConvNeXtEncoder3d(
            self.n_channels_, widths, depths, n_frames=self.n_frames,
            n_spatial_dims=self.n_spatial_dims_, dw_impl=self.dw_impl,
        )
        predictor = JEPAPredictor(widths[-1], self.predictor_width, n_spatial_dims=self.n_spatial_dims_, dw_impl=self.dw_impl)
        return {"encoder_": encoder, "predictor_": predictor}

    def _make_sampler(self, X, y, device, seed, batch_size):
        # (context, target) pairs: random windows of 2 * n_frames consecutive frames
        return WindowSampler(X, 2 * self.n_frames, self.mean_, self.scale_, device, seed, batch_size, type(self).__name__)

    def _batches(self, sampler, epoch, first_step, rows, ctx):
        noise = float(self.input_noise)
        gen = torch.Generator(ctx.device)
        for step, win in enumerate(sampler.batches(epoch, first_step, rows), start=first_step):
            gen.manual_seed(step_seed(sampler.plan.seed, NOISE, epoch, step))
            if noise > 0:  # drawn for the global batch, so that it does not depend on the ranks
                shape = (sampler.plan.batch_size,) + tuple(win.shape[1:])
                win = win + noise * torch.randn(shape, device=win.device, generator=gen)[rows]
            yield win, gen

    def _loss(self, modules, batch, ctx):
        win, gen = batch
        return jepa_loss(
            modules["encoder_"], modules["predictor_"], win, self.n_frames,
            (self.sim_coeff, self.std_coeff, self.cov_coeff), self.vicreg_chunks, gen,
            gather=(lambda z: all_gather_with_grad(z, ctx)) if ctx.is_distributed else None,
        )

    def _train_options(self):
        return {
            "betas": (0.9, 0.95), "schedule": "cosine", "warmup_epochs": self.warmup_epochs,
            "final_lr_ratio": min(1.0, 1e-6 / self.lr),
        }

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Embed the first ``n_frames`` frames of each trajectory.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels) with T >= n_frames

        Returns
        -------
        tokens : ndarray of shape (n_samples, n_tokens, width), or (n_samples, width) with
            ``pooling="mean"``. ``n_tokens = T' * H' * W'`` of the last stage (196 for 16x224x224).
        """
        check_is_fitted(self)
        who = type(self).__name__
        X = check_trajectories(
            X, spatial_dims=(self.n_spatial_dims_,), min_frames=self.n_frames, n_channels=self.n_channels_,
            estimator=who, allow_lazy=True,
        )
        self._check_sizes(X, len(self.encoder_.stages))
        device = self._runtime_device()
        encoder = self._module_on("encoder_", device).eval()

        def embed(batch):
            xb = normalized_batch(batch[:, : self.n_frames], self.mean_, self.scale_, device)
            with autocast(device):
                z = encoder(xb)
            z = z.float().flatten(2).transpose(1, 2)  # (b, tokens, width)
            if self.pooling == "mean":
                z = z.mean(dim=1)
            return z.cpu().numpy()

        return self._map_batches(X, embed)

    def _token_encoder(self):
        """The trainable map from raw windows to what ``transform`` returns (for
        :class:`skphys.FineTunedRegressor`)."""
        import functools

        from ._finetune import TokenEncoder

        check_is_fitted(self, "encoder_")
        return TokenEncoder(self.encoder_, self.mean_, self.scale_, self.n_frames,
                            functools.partial(_jepa_tokens, pooling=self.pooling))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
