"""Identification along a decreasing KL weight: :class:`BetaPathVAE`."""

from __future__ import annotations

import numbers
import os
import warnings
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context, clone
from sklearn.utils import get_tags
from sklearn.utils._param_validation import HasMethods, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import check_trajectories, is_lazy
from ._dynamics_vae import DynamicsVAE

#: The small 1-D configuration of docs/dynamics_vae.md ("Identification in the small
#: configuration"): about 20 ms per training step on one CPU thread. Relevance is counted by
#: independent directions of the latent means (``relevance_rule="directions"``). No position
#: dropout (the published training script's setting): on the damped wave of the test bed it
#: counted both parameters on 2 of 3 seeds instead of 1, with the one-parameter paths unchanged
#: (docs/dynamics_vae.md, 2026-12-03).
SMALL_1D = dict(
    encoder_crop=(32, 40), decoder_crop=48, rollout_steps=8, batch_size=32, output_scale=1e-2, lr=1e-3,
    hidden_channels=8, encoder_widths=(4, 16, 16, 16), max_epochs=600, relevance_rule="directions",
    position_dropout=0.0,
)


class BetaPathVAE(TransformerMixin, BaseEstimator):
    """Fit :class:`DynamicsVAE` at decreasing KL weights and keep the first fit that finds relevant latents.

    The KL weight ``beta`` is the price, in rollout error, of one nat of information in a latent.
    A parameter that changes the dynamics a lot buys its latent at a high price; a latent that
    would only trim the decoder's error a little is kept only when information is cheap. Which
    ``beta`` separates the two depends on the system: on the test bed of
    ``benchmarks/unseen_systems.py`` at the small configuration below, beta 2e-3 gave KdV exactly
    its one parameter, while Allen-Cahn and Swift-Hohenberg found none at 2e-3 but exactly theirs at
    2.5e-4 (docs/dynamics_vae.md). So the path starts at the highest price and stops at the first
    ``beta`` at which any latent is relevant: the latents that are worth encoding at the highest
    price that buys any. The default prices fall 8-fold per step, so that every system of the test
    bed is found within two fits (5 minutes of one CPU thread on the machines used); the third,
    3e-5, is a last try for weaker parameters that the test bed never reached.

    With the defaults (600 epochs on 256 trajectories of 96 x 128) it found exactly the one hidden
    parameter of KdV on 4 of 5 seeds (one seed counted a second direction) and of Allen-Cahn and
    Swift-Hohenberg on 5 of 5 seeds each, with R^2 0.88-0.99 on unseen trajectories. On a damped
    wave with two hidden parameters it counted both on 2 of 3 seeds, but tracked the damping only
    at R^2 0.35-0.58: 41% of that system's initial energy is in overdamped modes, whose decay
    hides the damping. With every mode underdamped it found both, at R^2 0.9 or more
    (docs/dynamics_vae.md).

    The default model counts relevant latents by independent directions
    (``relevance_rule="directions"``, :func:`skphys.metrics.relevant_latents`): two latents whose
    means move together carry one parameter and count once. On the fits of the test bed above
    the two rules agreed wherever a single parameter was found; they differ where latents are
    redundant (the published code's two KdV latents, one direction) or share a second parameter
    (the damped wave with scaled channels at beta 5e-4: 3-5 latents, 2 directions).

    Parameters
    ----------
    estimator : DynamicsVAE, default=None
        The model to fit at each ``beta`` (cloned, its own ``beta`` replaced). ``None``: the small
        1-D configuration (encoder crop 32 x 40, encoder widths (4, 16, 16, 16), decoder crop 48,
        8-step rollouts, 8 hidden decoder channels, ``output_scale=1e-2``, batch 32, 600 epochs,
        ``relevance_rule="directions"``, ``position_dropout=0``), which needs trajectories of at
        least 32 frames and 48 points.
    betas : sequence of float, default=(2e-3, 2.5e-4, 3e-5)
        Strictly decreasing positive KL weights. Until 2026-12-03 the default was (2e-3, 5e-4,
        1e-4), which needed three fits for Swift-Hohenberg on most seeds.
    scale_channels : {"auto", True, False}, default="auto"
        Divide every channel by its root mean square over the training trajectories, in ``fit``
        and in ``transform``, so that fields in different units weigh alike in the rollout
        error. ``"auto"``: only when the data have two or more channels (one-channel data are
        passed through unchanged). On a damped wave observed as (u, u_t), whose RMS differ about
        7-fold, the path found only the wave speed without this scaling and both parameters with
        it (docs/dynamics_vae.md). Scaling reads the whole training set into memory as float32.

    Attributes
    ----------
    channel_scale_ : ndarray of shape (n_channels,)
        The RMS each channel was divided by (ones where nothing was scaled). The kept
        ``best_estimator_`` was fitted on ``X / channel_scale_``: divide data by it before
        calling that model's ``predict``, and multiply its predictions by it.
    best_estimator_ : DynamicsVAE
        The fit that was kept: the first with a relevant latent, or the last of the path (with a
        warning) if none had one.
    beta_ : float
        Its KL weight.
    relevant_latents_ : ndarray of int
        Its relevant latents, most informative first.
    latent_stats_ : dict
        Its ``var(mu)`` and ``mean(sigma^2)`` per latent and its direction SNRs (see
        ``DynamicsVAE.latent_stats_``), for judging the count yourself.
    path_ : list of dict
        Per fitted ``beta``, in order: ``beta``, ``n_relevant``, ``ratios``
        (``var(mu) / mean(sigma^2)`` per latent) and ``direction_snr`` (the signal-to-noise
        ratios of the independent directions of the latent means,
        :func:`skphys.metrics.latent_directions`).

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import BetaPathVAE, DynamicsVAE
    >>> X = np.random.default_rng(0).normal(size=(4, 40, 40, 1)).astype("float32")
    >>> tiny = DynamicsVAE(encoder_crop=(32, 32), decoder_crop=20, rollout_steps=3, hidden_channels=4,
    ...                    max_epochs=1, batch_size=4, random_state=0)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")  # noise has no relevant latent, which warns
    ...     path = BetaPathVAE(tiny, betas=(1e-2, 1e-3)).fit(X)
    >>> [p["beta"] for p in path.path_], path.transform(X).shape, path.channel_scale_  # 1 channel: not scaled
    ([0.01, 0.001], (4, 5), array([1.], dtype=float32))
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "transform"]), None],
        "betas": ["array-like"],
        "scale_channels": [StrOptions({"auto"}), "boolean"],
    }

    def __init__(self, estimator: DynamicsVAE | None = None, betas: Sequence[float] = (2e-3, 2.5e-4, 3e-5),
                 scale_channels: str | bool = "auto") -> None:
        self.estimator = estimator
        self.betas = betas
        self.scale_channels = scale_channels

    def _base(self):
        if self.estimator is None:
            return DynamicsVAE(**SMALL_1D)
        if not isinstance(self.estimator, DynamicsVAE):
            raise TypeError(f"estimator must be a DynamicsVAE, got {type(self.estimator).__name__}")
        return self.estimator

    def _checked_betas(self):
        betas = self.betas
        if isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence | np.ndarray):
            raise TypeError(f"betas must be a sequence of floats, got {betas!r}")
        if len(betas) == 0:
            raise ValueError("betas must hold at least one KL weight")
        out = []
        for b in betas:
            if isinstance(b, bool) or not isinstance(b, numbers.Real) or not np.isfinite(b) or b <= 0:
                raise ValueError(f"betas must be finite positive numbers, got {betas!r}")
            out.append(float(b))
        if any(a <= b for a, b in zip(out, out[1:])):
            raise ValueError(f"betas must be strictly decreasing (highest price first), got {betas!r}")
        return out

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X: ArrayLike, y: ArrayLike | None = None) -> "BetaPathVAE":
        """Fit along the path; ``y`` is ignored (the identification uses no labels).

        With a ``checkpoint_dir`` on the estimator, each ``beta`` checkpoints in its own
        subdirectory ``beta_<i>``, so an interrupted path resumes where it stopped."""
        base = self._base()
        betas = self._checked_betas()
        X = self._fit_scale(X)
        self.path_ = []
        best = None
        for i, beta in enumerate(betas):
            est = clone(base).set_params(beta=beta)
            if base.checkpoint_dir is not None:
                est.set_params(checkpoint_dir=os.path.join(os.fspath(base.checkpoint_dir), f"beta_{i}"))
            est.fit(X)
            stats = est.latent_stats_
            self.path_.append({
                "beta": beta,
                "n_relevant": len(est.relevant_latents_),
                "ratios": stats["mu_variance"] / stats["mean_sigma2"],
                "direction_snr": stats["direction_snr"],
            })
            best = est
            if len(est.relevant_latents_):
                break
        else:
            warnings.warn(
                f"BetaPathVAE: no latent was relevant at any beta in {betas}; keeping the fit at "
                f"beta={betas[-1]:g}. Try smaller betas or longer training.",
                UserWarning, stacklevel=2,
            )
        self.best_estimator_ = best
        self.beta_ = best.beta_
        self.relevant_latents_ = best.relevant_latents_
        self.latent_stats_ = best.latent_stats_
        return self

    def _fit_scale(self, X):
        """Set ``channel_scale_`` from the training trajectories and return them scaled (or unchanged)."""
        X = check_trajectories(X, estimator="BetaPathVAE", allow_lazy=True, min_frames=2)
        n_channels = int(X.shape[-1])
        scale = self.scale_channels
        if not ((n_channels >= 2) if isinstance(scale, str) else bool(scale)):
            self.channel_scale_ = np.ones(n_channels, dtype=np.float32)
            return X
        if is_lazy(X):
            X = check_trajectories(X, estimator="BetaPathVAE", allow_lazy=False, min_frames=2)
        rms = np.sqrt((np.asarray(X, dtype=np.float64) ** 2).mean(axis=tuple(range(X.ndim - 1))))
        if np.any(rms == 0):
            raise ValueError(
                f"BetaPathVAE: channel(s) {np.flatnonzero(rms == 0).tolist()} of X are zero everywhere, so "
                "they cannot be scaled to unit RMS; drop them or pass scale_channels=False"
            )
        self.channel_scale_ = rms.astype(np.float32)
        return X / self.channel_scale_

    def transform(self, X: ArrayLike, return_std: bool = False):
        """Latent means (and standard deviations) of the kept fit for ``X`` in the units it was
        fitted in (divided by ``channel_scale_`` first), see :meth:`DynamicsVAE.transform`."""
        check_is_fitted(self, "best_estimator_")
        if np.any(self.channel_scale_ != 1):
            X = check_trajectories(X, estimator="BetaPathVAE", allow_lazy=False, n_channels=len(self.channel_scale_))
            X = X / self.channel_scale_
        return self.best_estimator_.transform(X, return_std=return_std)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self.estimator if isinstance(self.estimator, DynamicsVAE) else DynamicsVAE())
        tags.input_tags = inner.input_tags
        tags.target_tags.required = False
        tags.non_deterministic = inner.non_deterministic
        return tags
