"""Non-learned baseline features for trajectory data: per-channel statistics and power spectra."""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._base import check_finite_batch, check_trajectories, is_lazy, iter_batches

__all__ = ["SpectralStatsFeatures"]


class SpectralStatsFeatures(TransformerMixin, BaseEstimator):
    """Per-channel mean, std, temporal-increment std and radially binned power spectrum.

    A fixed (non-learned) featurisation of trajectories, meant as an honest baseline for learned
    embeddings: put it in a :class:`~sklearn.pipeline.Pipeline` with
    :class:`~sklearn.linear_model.Ridge` or a random forest. Every comparison in skphys's
    examples prints this baseline beside the learned embeddings, because on clean simulated data
    the power spectrum alone often reads the viscosity or diffusivity off directly; when it wins,
    self-supervision is not worth it on that data.

    For each channel ``c`` the features are

    - ``mean``: mean over frames and space,
    - ``std``: standard deviation over frames and space,
    - ``dt_std``: standard deviation of the frame-to-frame increments (how fast the field moves),
    - ``logpow_k{i}``: ``log10`` of the spatial power spectrum averaged over frames and over the
      wavenumbers with ``|k|`` (cycles per grid point) in bin ``i`` of ``n_bins`` equal bins of
      ``(0, 0.5]``.

    Parameters
    ----------
    n_frames : int or None, default=None
        Use only the first ``n_frames`` frames (``None``: all). Set it to the JEPA window length to
        give the baseline the same information as the embedding.
    n_bins : int, default=8
        Number of radial wavenumber bins.

    Attributes
    ----------
    n_channels_ : int
        Channels seen in ``fit``.
    spatial_shape_ : tuple of int
        Spatial shape seen in ``fit``.
    n_features_out_ : int
        ``n_channels_ * (3 + n_bins)``.

    See Also
    --------
    skphys.JEPAEmbedder : A learned embedding to compare against.

    Examples
    --------
    >>> import numpy as np
    >>> from skphys import SpectralStatsFeatures
    >>> X = np.random.default_rng(0).normal(size=(4, 8, 16, 16, 2)).astype("float32")
    >>> SpectralStatsFeatures(n_bins=4).fit_transform(X).shape
    (4, 14)

    As a baseline regressor: the diffusivity of 1-D heat-equation trajectories is read off the
    decay of their power spectrum.

    >>> from sklearn.linear_model import RidgeCV
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> rng = np.random.default_rng(0)
    >>> D = rng.uniform(0.5, 2.0, size=60)                     # diffusivities
    >>> k = 2 * np.pi * np.fft.rfftfreq(32)                     # wavenumbers of a 32-point grid
    >>> t = 0.05 * np.arange(10)                                # 10 frames
    >>> u0 = np.fft.rfft(rng.normal(size=(60, 32)), axis=-1)
    >>> u = np.fft.irfft(u0[:, None] * np.exp(-D[:, None, None] * k**2 * t[:, None]), n=32)
    >>> X = u[..., None].astype("float32")                     # (n, T, n_points, 1)
    >>> model = make_pipeline(SpectralStatsFeatures(n_bins=4), StandardScaler(), RidgeCV())
    >>> model.fit(X[:40], D[:40]).score(X[40:], D[40:]) > 0.9
    True
    """

    _parameter_constraints = {
        "n_frames": [None, Interval(numbers.Integral, 2, None, closed="left")],
        "n_bins": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def __init__(self, n_frames: int | None = None, n_bins: int = 8) -> None:
        self.n_frames = n_frames
        self.n_bins = n_bins

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: object = None) -> SpectralStatsFeatures:
        """Record the channel count and spatial shape of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, \\*space, C)
            Trajectories (1-D or 2-D space), or a lazy array-like.
        y : None
            Ignored.

        Returns
        -------
        self : SpectralStatsFeatures
        """
        X = check_trajectories(X, min_frames=self.n_frames or 2, estimator=type(self).__name__)
        self.n_channels_ = X.shape[-1]
        self.spatial_shape_ = tuple(X.shape[2:-1])
        self.n_features_out_ = self.n_channels_ * (3 + self.n_bins)
        return self

    def _bin_index(self):
        shape = self.spatial_shape_
        if len(shape) == 1:
            k = np.abs(np.fft.rfftfreq(shape[0]))
        else:
            ky = np.fft.fftfreq(shape[0])[:, None]
            kx = np.fft.rfftfreq(shape[1])[None, :]
            k = np.sqrt(ky**2 + kx**2)
        edges = np.linspace(0.0, 0.5, self.n_bins + 1)
        idx = np.digitize(k, edges[1:-1], right=True)  # bin of each mode
        idx[(k <= 0) | (k > 0.5)] = -1  # drop the mean and the corner modes
        return idx.ravel()

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Compute the features.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, \\*space, C)
            Trajectories with the channels and spatial shape seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features)
            ``n_features_out_ = n_channels_ * (3 + n_bins)`` columns, named by
            :meth:`get_feature_names_out`.
        """
        check_is_fitted(self)
        who = type(self).__name__
        X = check_trajectories(
            X, min_frames=self.n_frames or 2, n_channels=self.n_channels_, estimator=who
        )
        if tuple(X.shape[2:-1]) != self.spatial_shape_:
            raise ValueError(f"{who}: X has spatial shape {tuple(X.shape[2:-1])}, fitted on {self.spatial_shape_}")
        idx = self._bin_index()
        valid = idx >= 0
        counts = np.bincount(idx[valid], minlength=self.n_bins).astype(np.float64)
        if np.any(counts == 0):
            raise ValueError(f"{who}: n_bins={self.n_bins} is too many for spatial shape {self.spatial_shape_}")
        out = []
        nd = len(self.spatial_shape_)
        axes = tuple(range(2, 2 + nd))
        for _, batch in iter_batches(X, 64):
            if is_lazy(X):
                check_finite_batch(batch, f"{who}: ")
            if self.n_frames is not None:
                batch = batch[:, : self.n_frames]
            b = batch.astype(np.float64)
            mean = b.mean(axis=(1, *axes))
            std = b.std(axis=(1, *axes))
            dt_std = np.diff(b, axis=1).std(axis=(1, *axes))
            f = np.fft.rfftn(b, axes=axes) if nd == 2 else np.fft.rfft(b, axis=2)
            power = (np.abs(f) ** 2).mean(axis=1) / np.prod(self.spatial_shape_)  # (n, *k, C)
            power = power.reshape(power.shape[0], -1, power.shape[-1])[:, valid]  # (n, modes, C)
            binned = np.stack(
                [np.bincount(idx[valid], weights=power[i, :, c], minlength=self.n_bins) for i in range(len(b)) for c in range(b.shape[-1])]
            ).reshape(len(b), b.shape[-1], self.n_bins) / counts
            logpow = np.log10(binned + 1e-30)
            feats = np.concatenate([mean[:, :, None], std[:, :, None], dt_std[:, :, None], logpow], axis=2)
            out.append(feats.reshape(len(b), -1))
        return np.concatenate(out).astype(np.float64)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Names ``ch{c}_mean``, ``ch{c}_std``, ``ch{c}_dt_std``, ``ch{c}_logpow_k{i}``."""
        check_is_fitted(self)
        names = []
        for c in range(self.n_channels_):
            names += [f"ch{c}_mean", f"ch{c}_std", f"ch{c}_dt_std"]
            names += [f"ch{c}_logpow_k{i}" for i in range(self.n_bins)]
        return np.asarray(names, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags
