"""scikit-learn estimator for the physics VAE (PDE-VAE): unsupervised extraction of the parameters
that govern a family of spatiotemporal systems, and a transferable learned propagator."""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import TRAINING_CONSTRAINTS, TorchEstimatorBase, check_trajectories
from ._sampling import NOISE, CropSampler
from ._training import step_seed
from .nn.dynamics_vae import _ACTIVATIONS, DynamicsVAEModule, receptive_field, single_backward

__all__ = ["DynamicsVAE"]

_DEFAULTS = {
    # n_spatial_dims: (encoder_crop, decoder_crop, rollout_steps, beta)
    1: ((64, 94), (76,), 31, 0.02),
    2: ((45, 62, 62), (44, 44), 15, 1e-4),
}


def _as_tuple(value, n, name):
    if isinstance(value, numbers.Integral):
        return (int(value),) * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise ValueError(f"{name} must have {n} entries for this data, got {value}")
    return value


def _vae_latent_means(module, x):
    return module.encode(x)[0]


class DynamicsVAE(TransformerMixin, TorchEstimatorBase):
    """Physics VAE that extracts interpretable dynamical parameters from trajectories.

    A dilated-convolution *dynamics encoder* maps a trajectory to ``n_latents`` Gaussian latent
    parameters (inverse-variance-weighted average of local estimates); a *propagating decoder*
    whose convolution kernels are functions of the latents steps an initial state forward in
    time. Both are trained end to end on random (encoder, decoder) crop pairs from the same
    trajectory with loss ``MSE + beta * KL`` (Lu, Ariño Bernad & Soljačić, Phys. Rev. Research
    2, 013048, 2020). Unused latents collapse to the prior; the relevant ones correlate linearly
    with the true physical parameters.

    The defaults are the paper's configuration, sized for its budget: about 2,000 epochs of
    5,000 trajectories on a GPU. At a budget of minutes on a CPU they leave every latent at the
    prior on all four unseen test systems of docs/dynamics_vae.md (as does the published code at
    equal epochs). To ask how many parameters vary in unlabelled 1-D trajectories on a CPU,
    start from :class:`BetaPathVAE`: with its defaults (a small configuration of this model,
    fitted at decreasing ``beta``) it found exactly the one hidden parameter of KdV, Allen-Cahn
    and Swift-Hohenberg on 3 of 3 seeds each, in minutes.

    The rollout MSE weighs each channel by its squared magnitude, as the paper's code does. With
    fields in different units, divide each channel by its RMS before fitting, e.g.
    ``X / np.sqrt((X ** 2).mean(axis=(0, 1, 2)))`` (:class:`BetaPathVAE` does this by default for
    data with two or more channels). On a damped wave observed as (u, u_t), whose RMS differ
    7-fold, this made the wave speed's latent more reliable (docs/dynamics_vae.md).
    A second, weaker parameter (there, the damping) was then tracked better with
    ``kl_warmup_epochs=100, init_latent_std=0.05``: KL warm-up from narrow posteriors raised its
    R^2 from about 0.5 to 0.73-0.80 on 3 of 3 seeds at ``beta=5e-4``.

    Parameters
    ----------
    n_latents : int, default=5
        Number of latent parameters.
    beta : float, default=None
        Weight of the KL term. ``None``: 0.02 for 1-D systems, 1e-4 for 2-D (the paper's).
    hidden_channels : int, default=16
        Width of the decoder's hidden dynamic convolutions.
    kernel_size : int, default=5
        Size of the decoder's dynamic kernels (odd).
    linear_kernel_size : int, default=0
        Size (odd, at most ``3 * (kernel_size - 1) + 1``) of a linear dynamic convolution added in
        parallel to the decoder's three nonlinear ones, the published code's option of the same
        name. 0 (the paper's setting) adds none. Linear terms of the dynamics (diffusion,
        dispersion, damping) are then a kernel that depends on the latents, instead of something
        the ReLU network must build from pairs of units.
    boundary : {"crop", "periodic", "constant"}, default="crop"
        Boundary used in training. ``"crop"`` pads the decoder state each step with the edges of
        the true target crop and scores only the interior; ``"periodic"`` and ``"constant"``
        (Dirichlet, value ``fill_value``) pad the state.
    encoder_crop : tuple of int, default=None
        ``(frames, *space)`` of the encoder's crops. ``None``: (64, 94) in 1-D, (45, 62, 62) in 2-D.
        Every entry must be at least the encoder's receptive field, ``1 + 2 * sum(encoder_dilations)``
        (31 with the default dilations).
    decoder_crop : int or tuple of int, default=None
        Spatial size of the decoder's crops (including the padding in ``"crop"`` mode). ``None``:
        76 in 1-D and (44, 44) in 2-D with ``boundary="crop"``, the whole domain otherwise.
    rollout_steps : int, default=None
        Steps propagated in training (the target crop has ``rollout_steps + 1`` frames).
        ``None``: 31 in 1-D, 15 in 2-D.
    fill_value : float, default=0.0
        Padding value for ``boundary="constant"``.
    position_dropout : float, default=0.1
        Fraction of encoder positions dropped at random from the weighted average in training.
    output_scale : float, default=1e-6
        Fixed prefactor of the decoder's update.
    kernel_hidden_factor : int, default=None
        Hidden width of the latent-to-kernel MLPs is ``kernel_hidden_factor * C_in * C_out``.
        ``None``: 4 in 1-D, 16 in 2-D.
    encoder_widths : sequence of 4 int, default=None
        Widths of the encoder's dilated convolutions. ``None``: (4, 16, 64, 64) in 1-D and
        (8, 64, 64, 64) in 2-D (the paper's).
    encoder_dilations : sequence of int, default=None
        Dilations of the encoder's kernel-3 convolutions, one per entry of ``encoder_widths``
        (4 with the default widths). ``None``: (1, 2, 4, 8), the paper's, with receptive field
        31. Smaller dilations shrink the receptive field and with it the smallest encoder crop
        and the trajectories ``transform`` accepts (e.g. (1, 1, 2, 4): 17), which makes 2-D
        training steps much cheaper on a CPU.
    encoder_activation : {"relu", "leaky_relu"}, default="relu"
        Activation of the encoder's convolutions. ReLU is the paper's. Narrow encoders (the
        quick CPU configurations) can lose all their ReLU units during training, which leaves
        every latent constant; ``"leaky_relu"`` (negative slope 0.1) cannot lose them (see
        docs/dynamics_vae.md).
    kl_warmup_epochs : int, default=0
        KL annealing: over the first ``kl_warmup_epochs`` epochs the KL weight *and* the
        reparameterisation noise ramp linearly (per step) from 0 to ``beta`` and 1, so training
        starts as a plain autoencoder. 0 (the paper's) trains the VAE from the first step.
        Small models on weak signals can stay at the no-information loss for many thousands of
        steps: at initialisation the sampled latents are mostly noise, the decoder learns to
        ignore them and the KL pulls the means to zero before they carry anything. In the quick
        convection-diffusion runs neither this nor ``init_latent_std`` alone shortened that;
        both together did (docs/dynamics_vae.md).
    init_latent_std : float, default=1.0
        Standard deviation of the latent posteriors at initialisation (the encoder's
        log-variance head starts with its bias shifted by ``2 log(init_latent_std)``). 1.0, the
        paper's, starts them at the prior's width, where the reparameterisation noise swamps the
        small initial means; with ``kl_warmup_epochs``, a small value (e.g. 0.05) lets the means
        carry information from the first steps (see docs/dynamics_vae.md).
    relevance_threshold : float, default=1.0
        A latent is relevant when ``var(mu) / mean(sigma^2)`` on the training data exceeds this
        (its signal-to-noise ratio as a channel to the decoder; 1 is about 0.35 nats). Why this
        rule rather than the per-latent KL or a gap statistic: :func:`skphys.metrics.relevant_latents`.
    relevance_rule : {"ratio", "directions"}, default="ratio"
        ``"ratio"`` (the paper's reading of its Fig. 2) judges each latent on its own;
        ``"directions"`` counts the independent directions of the latent means whose
        signal-to-noise ratio exceeds ``relevance_threshold``, so that two latents carrying the
        same parameter count once (:func:`skphys.metrics.relevant_latents`).
    max_epochs : int, default=2000
        Epochs; one epoch draws one crop pair from each training trajectory.
    batch_size : int, default=50
    lr : float, default=1e-3
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"constant"`` (the paper's) keeps ``lr`` throughout; ``"cosine"`` decays it along a
        half cosine to 0 over the fit's epochs, as the other embedders' schedules do. On CUDA a
        cosine fit runs without the CUDA graph. With ``warm_start``, the schedule spans all
        epochs done so far plus ``max_epochs``. On the test bed's damped wave it did not lower
        the final rollout error (docs/dynamics_vae.md).
    weight_decay : float, default=0.0
    mixed_precision : bool, default=False
        bf16 autocast for the convolutions on CUDA (the decoder state stays float32). Off by
        default: on an H100 the bf16 step was slower (112 ms vs 68 ms, see docs/dynamics_vae.md).
    warm_start : bool, default=False
        When True, ``fit`` on a fitted model trains it for ``max_epochs`` *more* epochs instead
        of starting again (as in scikit-learn's ``MLPRegressor``): the weights, the AdamW state,
        the random streams and the KL warm-up continue where they stopped (the warm-up from the
        last completed epoch after an interrupt), and ``history_`` grows. On the CPU,
        ``fit(max_epochs=a)`` then ``fit(max_epochs=b)`` with ``warm_start=True`` gives bit for
        bit the model of one ``fit(max_epochs=a + b)`` on the same data.
        Long runs can so be split over several jobs (pickle the model between them; with Ctrl-C
        or ``timeout -s INT`` a job stops cleanly). The architecture and the data's dimensions
        and channels must not change; crops, rollout length, ``lr`` and ``beta`` may.
    device : str, default="auto"
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
    checkpoint_dir : str or path-like, default=None
        Write the full training state there after every epoch (atomically) and resume from it
        when ``fit`` is called again with the same parameters and data: a job killed by a
        scheduler loses at most one epoch, and on the CPU the resumed fit is bit for bit the
        uninterrupted one. SIGTERM and SIGUSR1 write a checkpoint and stop cleanly. See
        docs/scaling.md.
    callbacks : list of skorch callbacks, default=None
        skorch callbacks (``PrintLog``, ``EarlyStopping(monitor="loss")``, loggers), called with
        the estimator as ``net``.

    Attributes
    ----------
    module_ : DynamicsVAEModule
        The fitted torch module (stored on the CPU when pickled).
    history_ : skorch.history.History
        Per-epoch ``loss``, ``mse``, ``kl`` and ``kl_weight`` (the mean KL weight, below
        ``beta`` during ``kl_warmup_epochs``), ``lr``, ``epoch`` and ``dur``.
    latent_stats_ : dict
        ``"mu_variance"`` and ``"mean_sigma2"`` (each ``(n_latents,)``) on the training data, and
        ``"direction_snr"``, the signal-to-noise ratios of the independent directions of the
        latent means, decreasing (:func:`skphys.metrics.latent_directions`).
    relevant_latents_ : ndarray of int
        Indices of the relevant latents, most informative first.
    n_spatial_dims_, n_channels_ : int
    encoder_crop_, decoder_crop_ : tuple of int
    rollout_steps_ : int
    beta_ : float

    See Also
    --------
    BetaPathVAE : fits this model at decreasing KL weights and keeps the first fit with a
        relevant latent (identification in minutes on a CPU).
    skphys.metrics.relevant_latents : the rule behind ``relevant_latents_``.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import DynamicsVAE
    >>> X = np.random.default_rng(0).normal(size=(4, 40, 40, 1)).astype("float32")
    >>> vae = DynamicsVAE(encoder_crop=(32, 32), decoder_crop=20, rollout_steps=3,
    ...                   hidden_channels=4, max_epochs=1, batch_size=4, random_state=0)
    >>> vae.fit(X).transform(X).shape
    (4, 5)
    >>> vae.predict(X[:, 0], n_steps=5, context=X).shape
    (4, 5, 40, 1)
    >>> vae.set_params(warm_start=True).fit(X).history_[-1]["epoch"]  # one more epoch
    1
    """

    _parameter_constraints = {
        **TRAINING_CONSTRAINTS,
        "n_latents": [Interval(numbers.Integral, 1, None, closed="left")],
        "beta": [Interval(numbers.Real, 0, None, closed="left"), None],
        "hidden_channels": [Interval(numbers.Integral, 1, None, closed="left")],
        "kernel_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "linear_kernel_size": [Interval(numbers.Integral, 0, None, closed="left")],
        "boundary": [StrOptions({"crop", "periodic", "constant"})],
        "encoder_crop": ["array-like", None],
        "decoder_crop": [Interval(numbers.Integral, 1, None, closed="left"), "array-like", None],
        "rollout_steps": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "fill_value": [numbers.Real],
        "position_dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "output_scale": [Interval(numbers.Real, 0, None, closed="neither")],
        "kernel_hidden_factor": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "encoder_widths": ["array-like", None],
        "encoder_dilations": ["array-like", None],
        "encoder_activation": [StrOptions(set(_ACTIVATIONS))],
        "kl_warmup_epochs": [Interval(numbers.Integral, 0, None, closed="left")],
        "init_latent_std": [Interval(numbers.Real, 0, None, closed="neither")],
        "relevance_threshold": [Interval(numbers.Real, 0, None, closed="left")],
        "relevance_rule": [StrOptions({"ratio", "directions"})],
        "lr_schedule": [StrOptions({"constant", "cosine"})],
        "mixed_precision": ["boolean"],
        "warm_start": ["boolean"],
    }

    def __init__(
        self,
        n_latents: int = 5,
        beta: float | None = None,
        hidden_channels: int = 16,
        kernel_size: int = 5,
        linear_kernel_size: int = 0,
        boundary: str = "crop",
        encoder_crop: Sequence[int] | None = None,
        decoder_crop: int | Sequence[int] | None = None,
        rollout_steps: int | None = None,
        fill_value: float = 0.0,
        position_dropout: float = 0.1,
        output_scale: float = 1e-6,
        kernel_hidden_factor: int | None = None,
        encoder_widths: Sequence[int] | None = None,
        encoder_dilations: Sequence[int] | None = None,
        encoder_activation: str = "relu",
        kl_warmup_epochs: int = 0,
        init_latent_std: float = 1.0,
        relevance_threshold: float = 1.0,
        relevance_rule: str = "ratio",
        max_epochs: int = 2000,
        batch_size: int = 50,
        lr: float = 1e-3,
        lr_schedule: str = "constant",
        weight_decay: float = 0.0,
        mixed_precision: bool = False,
        warm_start: bool = False,
        device: str | torch.device = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        callbacks: Sequence[Any] | None = None,
    ) -> None:
        self.n_latents = n_latents
        self.beta = beta
        self.hidden_channels = hidden_channels
        self.kernel_size = kernel_size
        self.linear_kernel_size = linear_kernel_size
        self.boundary = boundary
        self.encoder_crop = encoder_crop
        self.decoder_crop = decoder_crop
        self.rollout_steps = rollout_steps
        self.fill_value = fill_value
        self.position_dropout = position_dropout
        self.output_scale = output_scale
        self.kernel_hidden_factor = kernel_hidden_factor
        self.encoder_widths = encoder_widths
        self.encoder_dilations = encoder_dilations
        self.encoder_activation = encoder_activation
        self.kl_warmup_epochs = kl_warmup_epochs
        self.init_latent_std = init_latent_std
        self.relevance_threshold = relevance_threshold
        self.relevance_rule = relevance_rule
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.mixed_precision = mixed_precision
        self.warm_start = warm_start
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks

    # ------------------------------------------------------------------ helpers
    def _encoder_dilations(self):
        n_layers = 4 if self.encoder_widths is None else len(tuple(self.encoder_widths))
        if self.encoder_dilations is None:
            if n_layers != 4:
                raise ValueError(
                    f"encoder_widths has {n_layers} entries, but the default encoder_dilations "
                    "(1, 2, 4, 8) has 4: pass 4 widths, or encoder_dilations with one entry per width"
                )
            return (1, 2, 4, 8)  # the paper's: receptive field 31
        dil = tuple(self.encoder_dilations)
        if len(dil) != n_layers or not all(isinstance(v, numbers.Integral) and v >= 1 for v in dil):
            raise ValueError(
                f"encoder_dilations must be {n_layers} positive integers (one per encoder layer), got {dil!r}"
            )
        return tuple(int(v) for v in dil)

    def _resolve_sizes(self, shape):
        d = len(shape) - 3
        enc_default, dec_default, steps_default, beta_default = _DEFAULTS[d]
        space = tuple(shape[2:-1])
        rf = receptive_field(self._encoder_dilations())
        enc = _as_tuple(enc_default if self.encoder_crop is None else self.encoder_crop, d + 1, "encoder_crop")
        if any(e < rf for e in enc):
            raise ValueError(
                f"encoder_crop={enc} is too small: every entry must be at least {rf}, the "
                "receptive field of the dynamics encoder"
            )
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        pad = 3 * (self.kernel_size // 2)
        if self.linear_kernel_size and (self.linear_kernel_size % 2 != 1 or self.linear_kernel_size > 2 * pad + 1):
            raise ValueError(
                f"linear_kernel_size must be 0 or odd and at most {2 * pad + 1} (the reach of the decoder's "
                f"three kernel_size={self.kernel_size} convolutions), got {self.linear_kernel_size}"
            )
        if self.decoder_crop is None:
            dec = dec_default if self.boundary == "crop" else space
        else:
            dec = self.decoder_crop
        dec = _as_tuple(dec, d, "decoder_crop")
        if self.boundary == "crop" and any(s <= 2 * pad for s in dec):
            raise ValueError(
                f"decoder_crop={dec} must exceed 2 * {pad} (the boundary padding of kernel_size="
                f"{self.kernel_size}) along every axis with boundary='crop'"
            )
        steps = steps_default if self.rollout_steps is None else int(self.rollout_steps)
        need_t = max(enc[0], steps + 1)
        need_space = tuple(max(e, c) for e, c in zip(enc[1:], dec))
        if shape[1] < need_t or any(s < n for s, n in zip(space, need_space)):
            raise ValueError(
                f"DynamicsVAE: X has {shape[1]} frames and spatial size {space}, but the crops need "
                f"at least {need_t} frames (encoder_crop {enc[0]}, rollout_steps + 1 = {steps + 1}) "
                f"and spatial size {need_space}; pass smaller encoder_crop/decoder_crop/rollout_steps"
            )
        beta = beta_default if self.beta is None else float(self.beta)
        return d, enc, dec, steps, beta

    # ------------------------------------------------------------------ fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> "DynamicsVAE":
        """Train on trajectories ``X`` (n_samples, T, n_points, C) or (n_samples, T, ny, nx, C).

        ``X`` may be a lazy array-like (e.g. ``load_well(..., lazy=True)``): each step then
        reads only the trajectories of its batch, so memory does not grow with their number.
        ``y`` is ignored (the method is unsupervised). Returns ``self``.
        """
        warm = self.warm_start and hasattr(self, "module_")
        return self._fit_engine(X, y, warm=warm)

    def _check_fit_input(self, X, y):
        X = check_trajectories(X, estimator="DynamicsVAE", allow_lazy=True, min_frames=2)
        sizes = self._resolve_sizes(X.shape)
        if self.warm_start and hasattr(self, "module_"):
            self._check_warm_start(sizes[0], X.shape[-1])
            done = len(self.history_)
        else:
            done = 0
        if self.kl_warmup_epochs > done + self.max_epochs:
            warnings.warn(
                f"DynamicsVAE: kl_warmup_epochs={self.kl_warmup_epochs} > max_epochs={done + self.max_epochs}; "
                f"the KL weight and the sampling noise reach only about "
                f"{(done + self.max_epochs) / self.kl_warmup_epochs:.2g} of beta and 1 by the end of training",
                UserWarning,
                stacklevel=3,
            )
        return X, y

    def _setup(self, X, y):
        d, enc, dec, steps, beta = self._resolve_sizes(X.shape)
        self.n_spatial_dims_ = d
        self.n_channels_ = X.shape[-1]
        self.encoder_crop_ = enc
        self.decoder_crop_ = dec
        self.rollout_steps_ = steps
        self.beta_ = beta

    def _architecture(self, d, C):
        """What a warm start must keep: the module's constructor arguments and the data's layout."""
        return {
            "n_spatial_dims": d,
            "n_channels": C,
            "n_latents": self.n_latents,
            "hidden_channels": self.hidden_channels,
            "kernel_size": self.kernel_size,
            "linear_kernel_size": self.linear_kernel_size,
            "kernel_hidden_factor": self.kernel_hidden_factor,
            "output_scale": self.output_scale,
            "encoder_widths": None if self.encoder_widths is None else tuple(int(w) for w in self.encoder_widths),
            "encoder_dilations": self._encoder_dilations(),
            "encoder_activation": self.encoder_activation,
        }

    def _check_warm_start(self, d, C):
        if getattr(self, "_optimizer_state", None) is None or not hasattr(self, "_fit_architecture"):
            raise ValueError(
                "DynamicsVAE: warm_start=True, but this model carries no training state (it was "
                "fitted by a skphys version without warm starts); set warm_start=False to start again"
            )
        before = self._fit_architecture
        now = self._architecture(d, C)
        # a model fitted before linear_kernel_size existed had none
        before = {"linear_kernel_size": 0, **before}
        changed = [f"{k} {before[k]!r} -> {now[k]!r}" for k in now if now[k] != before.get(k)]
        if changed:
            raise ValueError(
                "DynamicsVAE: warm_start=True continues training the fitted module, but "
                f"{', '.join(changed)} changed since the last fit; set warm_start=False to start again"
            )

    def _build_modules(self):
        return {"module_": DynamicsVAEModule(
            self.n_channels_,
            self.n_latents,
            self.n_spatial_dims_,
            self.hidden_channels,
            self.kernel_size,
            self.kernel_hidden_factor,
            self.output_scale,
            encoder_widths=None if self.encoder_widths is None else tuple(int(w) for w in self.encoder_widths),
            position_dropout=self.position_dropout,
            encoder_dilations=self._encoder_dilations(),
            encoder_activation=self.encoder_activation,
            init_latent_std=self.init_latent_std,
            linear_kernel_size=self.linear_kernel_size,
        )}

    def _make_sampler(self, X, y, device, seed, batch_size):
        dec_crop = (self.rollout_steps_ + 1,) + self.decoder_crop_
        return CropSampler(X, self.encoder_crop_, dec_crop, device, seed, batch_size, "DynamicsVAE")

    def _batches(self, sampler, epoch, first_step, rows, ctx):
        # every random number of the step comes in the batch (drawn for the global batch on the
        # CPU, sliced to this rank's rows), so that one captured CUDA graph serves every step
        B, steps = sampler.plan.batch_size, sampler.steps_per_epoch
        warmup_steps = self.kl_warmup_epochs * steps
        rf = receptive_field(self._encoder_dilations())
        drop_shape = (B, 1) + tuple(c - rf + 1 for c in self.encoder_crop_)  # one per encoder output position
        gen = torch.Generator()
        for step, (x, t) in enumerate(sampler.batches(epoch, first_step, rows), start=first_step):
            gen.manual_seed(step_seed(sampler.plan.seed, NOISE, epoch, step))
            eps = torch.randn(B, self.n_latents, generator=gen)[rows]
            drop = torch.rand(drop_shape, generator=gen)[rows]
            global_step = epoch * steps + step
            ramp = 1.0 if global_step >= warmup_steps else (global_step + 1) / (warmup_steps + 1)
            dev = x.device
            yield x, t, torch.full((), ramp, device=dev), eps.to(dev), drop.to(dev)

    def _loss(self, modules, batch, ctx):
        x, t, ramp, eps, drop = batch
        with single_backward():  # the engine runs one backward per loss
            return modules["module_"].loss(
                x, t, self.rollout_steps_, self.beta_, ramp, boundary=self.boundary, fill_value=self.fill_value,
                eps=eps, drop_noise=drop,
            )

    def _train_options(self):
        return {"amp": self.mixed_precision, "cuda_graph": True, "schedule": self.lr_schedule}

    def _finish_fit(self, X, y):
        self._fit_architecture = self._architecture(self.n_spatial_dims_, self.n_channels_)
        mu, sigma = self.transform(X, return_std=True)
        from .metrics import latent_directions, relevant_latents

        self.latent_stats_ = {"mu_variance": mu.var(axis=0), "mean_sigma2": (sigma**2).mean(axis=0),
                              "direction_snr": latent_directions(mu, sigma)[0]}
        self.relevant_latents_ = relevant_latents(
            mu, sigma, threshold=self.relevance_threshold, rule=self.relevance_rule
        )

    # ------------------------------------------------------------------ inference
    def _check_X(self, X, min_frames=None):
        check_is_fitted(self)
        d = self.n_spatial_dims_
        rf = self.module_.encoder.receptive_field
        X = check_trajectories(
            X,
            spatial_dims=(d,),
            min_frames=rf if min_frames is None else min_frames,
            min_space=rf if min_frames is None else None,
            n_channels=self.n_channels_,
            estimator="DynamicsVAE",
            allow_lazy=True,
        )
        return X

    def _transform_batch_size(self, shape):
        """Trajectories per encoder call: at most ``batch_size``, and at most 4x the grid points
        of a training batch of encoder crops (inference keeps far fewer activations alive than
        training), so that whole long or large trajectories do not exhaust GPU memory."""
        points = int(np.prod(shape[1:-1]))
        budget = 4 * self.batch_size * int(np.prod(self.encoder_crop_))
        return int(max(1, min(self.batch_size, budget // points)))

    def transform(self, X: ArrayLike, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Latent means of trajectories of any length and size (at least the encoder's receptive
        field, 31 frames and points with the default ``encoder_dilations``).

        Parameters
        ----------
        X : array-like (n_samples, T, *space, C)
        return_std : bool, default=False
            Also return the latent standard deviations.

        Returns
        -------
        mu : ndarray (n_samples, n_latents)
        sigma : ndarray (n_samples, n_latents), only with ``return_std=True``
        """
        X = self._check_X(X)
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()
        L = self.n_latents

        def encode(batch):
            mu, logvar = module.encode(torch.from_numpy(batch).to(device).movedim(-1, 1))
            return torch.cat([mu, torch.exp(0.5 * logvar)], dim=1).cpu().numpy()

        out = self._map_batches(X, encode, self._transform_batch_size(X.shape)).astype(np.float64)
        mu, sigma = out[:, :L], out[:, L:]
        return (mu, sigma) if return_std else mu

    def predict(
        self,
        X0: ArrayLike,
        n_steps: int,
        *,
        latents: ArrayLike | None = None,
        context: ArrayLike | None = None,
        boundary: str | None = None,
        fill_value: float | None = None,
    ) -> np.ndarray:
        """Propagate initial states forward with the learned decoder.

        Parameters
        ----------
        X0 : array-like (n_samples, *space, C)
            Initial states (any spatial size).
        n_steps : int
            Number of steps to propagate.
        latents : array-like (n_samples, n_latents), optional
            Latent parameters to use. Exactly one of ``latents`` and ``context`` must be given.
        context : array-like (n_samples, T, *space', C), optional
            Trajectories whose encoded latent means are used.
        boundary : {"periodic", "constant"}, optional
            Boundary at each step. ``None``: ``"constant"`` if the model was trained with
            ``boundary="constant"``, otherwise ``"periodic"``. ``"crop"`` is a training-only mode.
        fill_value : float, optional
            Wall value for ``"constant"`` (default: the ``fill_value`` parameter).

        Returns
        -------
        ndarray (n_samples, n_steps, *space, C): the states after 1 .. n_steps steps.
        """
        check_is_fitted(self)
        d = self.n_spatial_dims_
        if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
        if boundary is None:
            boundary = "constant" if self.boundary == "constant" else "periodic"
        if boundary not in ("periodic", "constant"):
            raise ValueError(
                f"boundary must be 'periodic' or 'constant' in predict, got {boundary!r} "
                "('crop' needs the true future edges and is used only in training)"
            )
        fill_value = self.fill_value if fill_value is None else float(fill_value)
        if isinstance(X0, torch.Tensor):
            X0 = X0.detach().cpu().numpy()
        X0 = np.asarray(X0, dtype=np.float32)
        if X0.ndim != d + 2:
            raise ValueError(
                f"X0 must be initial states of shape (n_samples, {', '.join(['ny', 'nx'][-d:] if d == 2 else ['n_points'])}, "
                f"n_channels) with {d + 2} dimensions; got shape {X0.shape}"
            )
        if X0.shape[-1] != self.n_channels_:
            raise ValueError(f"X0 has {X0.shape[-1]} channels but the model was fitted with {self.n_channels_}")
        if not np.isfinite(X0).all():
            raise ValueError("X0 contains NaN or infinite values")
        if (latents is None) == (context is None):
            raise ValueError("pass exactly one of latents= (n_samples, n_latents) and context= (trajectories)")
        if context is not None:
            latents = self.transform(context)
        latents = np.asarray(latents, dtype=np.float32)
        if latents.shape != (X0.shape[0], self.n_latents):
            raise ValueError(f"latents must have shape {(X0.shape[0], self.n_latents)}, got {latents.shape}")
        device = self._runtime_device()
        module = self._module_on("module_", device).eval()
        out = []
        with torch.no_grad():
            for start in range(0, X0.shape[0], self.batch_size):
                y0 = torch.from_numpy(X0[start : start + self.batch_size]).to(device).movedim(-1, 1)
                z = torch.from_numpy(latents[start : start + self.batch_size]).to(device)
                pred = module.decoder(y0, z, int(n_steps), boundary, fill_value=fill_value)
                out.append(pred.movedim(1, -1).cpu().numpy())
        return np.concatenate(out)

    def score(self, X: ArrayLike, y: ArrayLike | None = None) -> float:
        """Negative mean squared error of the rollout over the training horizon.

        Each trajectory's latents are encoded from ``X`` itself, its first frame is propagated
        ``min(T - 1, rollout_steps_)`` steps with the default boundary of :meth:`predict`, and
        the result is compared with the true frames. Higher is better.
        """
        X = self._check_X(X)
        X = np.asarray(X[:]) if not isinstance(X, np.ndarray) else X
        n_steps = min(X.shape[1] - 1, self.rollout_steps_)
        pred = self.predict(X[:, 0], n_steps, context=X)
        return -float(np.mean((pred - X[:, 1 : n_steps + 1]) ** 2))

    def _token_encoder(self):
        """The trainable map from raw trajectories to what ``transform`` returns (the latent
        means, as one token), for :class:`skphys.FineTunedRegressor`."""
        from ._finetune import TokenEncoder

        check_is_fitted(self, "module_")
        C = self.n_channels_
        return TokenEncoder(self.module_, np.zeros(C), np.ones(C), None, _vae_latent_means)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False
        return tags
