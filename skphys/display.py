"""Display objects for the papers' figures, in scikit-learn's style.

Each display stores the data of one figure, draws it with :meth:`plot` (on a new figure or on
the axes you pass) and keeps the matplotlib artists it drew as attributes ending in ``_``
(``ax_``, ``figure_``, ``lines_``...), like :class:`sklearn.metrics.PredictionErrorDisplay`. Build
one from a fitted estimator (``from_estimator``) or from arrays you already have
(``from_predictions``, ``from_cv_results``); both draw right away and return the display.

- :class:`LatentStatisticsDisplay`: variance of the latent means and mean latent variance per
  latent, relevant latents marked (PDE-VAE paper, Fig. 2).
- :class:`ParameterParityDisplay`: true against predicted parameters, one panel per target,
  with intervals when the estimator gives uncertainties and R^2 in the legend (Figs. 3-5).
- :class:`RolloutErrorDisplay`: RMSE per time step of one or more rollouts against a baseline
  (Fig. 6).
- :class:`LabelEfficiencyDisplay`: held-out error against the labelled fraction, from a
  :class:`~sklearn.model_selection.GridSearchCV` (JEPA paper, Table 2).

matplotlib is imported only when a display draws, so ``import skphys`` does not need it.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import latent_statistics, linear_fit, relevant_latents, rollout_rmse

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "LatentStatisticsDisplay",
    "ParameterParityDisplay",
    "RolloutErrorDisplay",
    "LabelEfficiencyDisplay",
]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        raise ImportError("skphys.display needs matplotlib: pip install matplotlib") from exc
    return plt


def _single_ax(ax: Axes | None) -> tuple[Axes, Figure]:
    if ax is None:
        _, ax = _pyplot().subplots(layout="constrained")
    elif not hasattr(ax, "get_figure"):
        raise TypeError(f"ax must be a matplotlib Axes, got {type(ax).__name__}")
    return ax, ax.get_figure()


def _finite_1d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _as_2d(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (n_samples, n_targets), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _names(names, n: int, default: str, what: str) -> list[str]:
    if names is None:
        return [default.format(i) for i in range(n)]
    if isinstance(names, str):
        names = [names]
    names = [str(v) for v in names]
    if len(names) != n:
        raise ValueError(f"{what} has {len(names)} entries, expected {n}")
    return names


# --------------------------------------------------------------------------- latent statistics
class LatentStatisticsDisplay:
    """Variance of the latent means and mean latent variance per latent (PDE-VAE Fig. 2).

    A relevant latent varies across samples more than its own uncertainty: high ``var(mu)``, low
    ``mean(sigma^2)``. Collapsed latents sit at the prior, ``var(mu) ~ 0`` and
    ``mean(sigma^2) ~ 1``. Both statistics are drawn as bars on a log axis; relevant latents are
    shaded and their tick labels set in bold.

    Build it with :meth:`from_estimator` (a fitted :class:`~skphys.DynamicsVAE`) or
    :meth:`from_predictions` (latent means and standard deviations); both draw right away.

    Parameters
    ----------
    mu_variance : array-like of shape (n_latents,)
        Variance of each latent's mean across samples.
    mean_sigma2 : array-like of shape (n_latents,)
        Mean over samples of each latent's variance.
    relevant_latents : array-like of int, default=None
        Indices of the relevant latents (``None``: none marked).
    latent_names : list of str, default=None
        Tick labels (``None``: the indices ``0 .. n_latents - 1``, as used to index ``mu``).

    Attributes
    ----------
    bars_mu_variance_ : matplotlib.container.BarContainer
        Bars of ``var(mu)``.
    bars_mean_sigma2_ : matplotlib.container.BarContainer
        Bars of ``mean(sigma^2)``.
    relevant_spans_ : list of matplotlib.patches.Rectangle
        Shading behind each relevant latent.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    skphys.metrics.latent_statistics : The two statistics.
    skphys.metrics.relevant_latents : Which latents are relevant.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skphys.display import LatentStatisticsDisplay
    >>> rng = np.random.default_rng(0)
    >>> mu = np.c_[rng.normal(size=200), 0.01 * rng.normal(size=200), rng.normal(size=200)]
    >>> sigma = np.c_[np.full(200, 0.05), np.full(200, 0.9), np.full(200, 0.1)]
    >>> disp = LatentStatisticsDisplay.from_predictions(mu, sigma)
    >>> disp.relevant_latents.tolist()
    [0, 2]
    >>> disp.ax_.get_title()
    'relevant latents: 0, 2'
    """

    def __init__(
        self,
        *,
        mu_variance: Any,
        mean_sigma2: Any,
        relevant_latents: Any = None,
        latent_names: Sequence[str] | None = None,
    ) -> None:
        self.mu_variance = mu_variance
        self.mean_sigma2 = mean_sigma2
        self.relevant_latents = relevant_latents
        self.latent_names = latent_names

    def plot(
        self,
        ax: Axes | None = None,
        *,
        log_scale: bool = True,
        title: str | None = None,
        bar_kwargs: dict | None = None,
    ) -> LatentStatisticsDisplay:
        """Draw the bars.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw on (``None``: a new figure).
        log_scale : bool, default=True
            Logarithmic y axis (the statistics span orders of magnitude).
        title : str, default=None
            ``None``: "relevant latents: ..." listing their indices.
        bar_kwargs : dict, default=None
            Passed to both :meth:`~matplotlib.axes.Axes.bar` calls.

        Returns
        -------
        display : LatentStatisticsDisplay
        """
        mu_var = _finite_1d(self.mu_variance, "mu_variance")
        s2 = _finite_1d(self.mean_sigma2, "mean_sigma2")
        if mu_var.shape != s2.shape:
            raise ValueError(f"mu_variance and mean_sigma2 have shapes {mu_var.shape} and {s2.shape}")
        n = len(mu_var)
        rel = [] if self.relevant_latents is None else [int(j) for j in np.asarray(self.relevant_latents).ravel()]
        if any(not 0 <= j < n for j in rel):
            raise ValueError(f"relevant_latents {rel} out of range for {n} latents")
        names = _names(self.latent_names, n, "{}", "latent_names")
        ax, fig = _single_ax(ax)
        kw = {"width": 0.38, **(bar_kwargs or {})}
        idx = np.arange(n)
        self.relevant_spans_ = [ax.axvspan(j - 0.5, j + 0.5, color="tab:green", alpha=0.12, lw=0) for j in rel]
        self.bars_mu_variance_ = ax.bar(idx - kw["width"] / 2, mu_var, color="tab:blue",
                                        label=r"var($\mu$) across samples", **kw)
        self.bars_mean_sigma2_ = ax.bar(idx + kw["width"] / 2, s2, color="tab:red",
                                        label=r"mean $\sigma^2$", **kw)
        if log_scale:
            ax.set_yscale("log")
        ax.set_xticks(idx, names)
        for j in rel:
            ax.get_xticklabels()[j].set_fontweight("bold")
        ax.set_xlim(-0.5, n - 0.5)
        ax.set_xlabel("latent")
        ax.set_ylabel("statistic over samples")
        if title is None:
            title = "relevant latents: " + (", ".join(names[j] for j in rel) if rel else "none")
        ax.set_title(title)
        ax.legend(fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_predictions(
        cls,
        mu: Any,
        sigma: Any,
        *,
        threshold: float = 1.0,
        rule: str = "ratio",
        latent_names: Sequence[str] | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> LatentStatisticsDisplay:
        """Display computed from latent means and standard deviations.

        Parameters
        ----------
        mu, sigma : array-like of shape (n_samples, n_latents)
            Latent means and standard deviations, e.g. ``vae.transform(X, return_std=True)``.
        threshold : float, default=1.0
            A latent is relevant when ``var(mu) / mean(sigma^2) > threshold``
            (:func:`skphys.metrics.relevant_latents`).
        rule : {"ratio", "directions"}, default="ratio"
            The relevance rule of :func:`skphys.metrics.relevant_latents`.
        latent_names : list of str, default=None
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LatentStatisticsDisplay
        """
        mu_var, s2 = latent_statistics(mu, sigma)
        rel = relevant_latents(mu, sigma, threshold=threshold, rule=rule)
        disp = cls(mu_variance=mu_var, mean_sigma2=s2, relevant_latents=rel, latent_names=latent_names)
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any = None,
        *,
        latent_names: Sequence[str] | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> LatentStatisticsDisplay:
        """Display of a fitted :class:`~skphys.DynamicsVAE`'s latents.

        Parameters
        ----------
        estimator : DynamicsVAE
            Fitted; any estimator with ``transform(X, return_std=True)`` works when ``X`` is given.
        X : array-like of shape (n_samples, T, \\*space, C), default=None
            ``None``: the statistics recorded on the training data (``latent_stats_`` and
            ``relevant_latents_``). Otherwise they are computed on ``X`` with the estimator's
            ``relevance_threshold`` and ``relevance_rule``.
        latent_names : list of str, default=None
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LatentStatisticsDisplay
        """
        if X is None:
            if not (hasattr(estimator, "latent_stats_") and hasattr(estimator, "relevant_latents_")):
                raise TypeError(
                    f"{type(estimator).__name__} has no latent_stats_ / relevant_latents_: pass a fitted "
                    "DynamicsVAE, or X to compute the statistics with estimator.transform(X, return_std=True)"
                )
            stats = estimator.latent_stats_
            disp = cls(mu_variance=stats["mu_variance"], mean_sigma2=stats["mean_sigma2"],
                       relevant_latents=estimator.relevant_latents_, latent_names=latent_names)
            return disp.plot(ax=ax, **plot_kwargs)
        mu, sigma = estimator.transform(X, return_std=True)
        threshold = float(getattr(estimator, "relevance_threshold", 1.0))
        rule = getattr(estimator, "relevance_rule", "ratio")
        return cls.from_predictions(mu, sigma, threshold=threshold, rule=rule, latent_names=latent_names, ax=ax,
                                    **plot_kwargs)


# --------------------------------------------------------------------------- parity
_DIAGONAL_GID = "skphys-parity-diagonal"


def _normal_quantile(confidence: float) -> float:
    if not (isinstance(confidence, numbers.Real) and 0 < confidence < 1):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def _r2(y, pred):
    ss_res = ((y - pred) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, np.nan)


class ParameterParityDisplay:
    """True against predicted parameters, one panel per target (PDE-VAE Figs. 3-5).

    Each panel shows the points, the diagonal ``y = x`` and, when standard deviations are given,
    Gaussian intervals (95% by default) as error bars; the legend gives R^2. Several models can
    share the panels: plot a second display on the first one's ``ax_`` with another ``name``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,) or (n_samples, n_targets)
    y_pred : array-like of the same shape
    y_std : array-like of the same shape, default=None
        Standard deviations of the predictions.
    target_names : list of str, default=None
        One per target (``None``: "target 0", ...).
    name : str, default=None
        Model name for the legend.

    Attributes
    ----------
    r2_ : ndarray of shape (n_targets,)
        Coefficient of determination per target.
    points_ : list
        Per target, the :class:`~matplotlib.container.ErrorbarContainer` (with ``y_std``) or the
        :class:`~matplotlib.collections.PathCollection` of the points.
    diagonals_ : list of matplotlib.lines.Line2D
        The ``y = x`` line of each panel (shared with displays drawn on the same axes).
    ax_ : ndarray of matplotlib Axes, shape (n_targets,)
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    skphys.metrics.linear_fit : Predictions and their uncertainty from latents.
    sklearn.metrics.PredictionErrorDisplay : scikit-learn's single-target equivalent.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skphys.display import ParameterParityDisplay
    >>> rng = np.random.default_rng(0)
    >>> y = rng.uniform(0.5, 2.0, size=(50, 2))
    >>> pred = y + 0.05 * rng.normal(size=y.shape)
    >>> disp = ParameterParityDisplay.from_predictions(
    ...     y, pred, y_std=np.full(y.shape, 0.05), target_names=["D", "v"], name="model")
    >>> disp.r2_.round(3).tolist()
    [0.985, 0.991]
    >>> disp.ax_[0].get_legend().get_texts()[0].get_text()
    'model, R$^2$ = 0.985 (bars: 95%)'
    """

    def __init__(
        self,
        *,
        y_true: Any,
        y_pred: Any,
        y_std: Any = None,
        target_names: Sequence[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.y_true = y_true
        self.y_pred = y_pred
        self.y_std = y_std
        self.target_names = target_names
        self.name = name

    def plot(
        self,
        ax: Axes | Sequence[Axes] | np.ndarray | None = None,
        *,
        name: str | None = None,
        confidence: float = 0.95,
        n_cols: int | None = None,
        scatter_kwargs: dict | None = None,
        errorbar_kwargs: dict | None = None,
    ) -> ParameterParityDisplay:
        """Draw one panel per target.

        Parameters
        ----------
        ax : matplotlib Axes or array-like of Axes, default=None
            One Axes per target (a single Axes for one target). ``None``: a new figure with
            ``n_cols`` columns.
        name : str, default=None
            Legend name (``None``: the ``name`` given at construction).
        confidence : float, default=0.95
            Coverage of the Gaussian intervals drawn from ``y_std``.
        n_cols : int, default=None
            Columns of the new figure (``None``: all targets in one row, at most 4 per row).
        scatter_kwargs, errorbar_kwargs : dict, default=None
            Passed to :meth:`~matplotlib.axes.Axes.scatter` (without ``y_std``) or
            :meth:`~matplotlib.axes.Axes.errorbar` (with it).

        Returns
        -------
        display : ParameterParityDisplay
        """
        y = _as_2d(self.y_true, "y_true")
        pred = _as_2d(self.y_pred, "y_pred")
        if pred.shape != y.shape:
            raise ValueError(f"y_true and y_pred have shapes {y.shape} and {pred.shape}")
        std = None
        if self.y_std is not None:
            std = _as_2d(self.y_std, "y_std")
            if std.shape != y.shape:
                raise ValueError(f"y_std has shape {std.shape}, expected {y.shape}")
            if (std < 0).any():
                raise ValueError("y_std must be non-negative")
        n_targets = y.shape[1]
        names = _names(self.target_names, n_targets, "target {}", "target_names")
        name = self.name if name is None else name
        z = _normal_quantile(confidence) if std is not None else None
        if ax is None:
            cols = n_cols or min(n_targets, 4)
            rows = -(-n_targets // cols)
            fig, grid = _pyplot().subplots(rows, cols, figsize=(3.8 * cols, 3.6 * rows), squeeze=False,
                                           layout="constrained")
            axes = grid.ravel()
            for extra in axes[n_targets:]:
                extra.set_visible(False)
            axes = axes[:n_targets]
        else:
            axes = np.ravel(np.asarray(ax, dtype=object))
            if len(axes) != n_targets:
                raise ValueError(f"ax has {len(axes)} Axes, need one per target ({n_targets})")
            fig = axes[0].get_figure()
        self.r2_ = _r2(y, pred)
        self.points_, self.diagonals_ = [], []
        for j, a in enumerate(axes):
            label = (f"{name}, " if name else "") + f"R$^2$ = {self.r2_[j]:.3f}"
            if std is not None:
                label += f" (bars: {confidence:.0%})"
                kw = {"fmt": "o", "ms": 3, "elinewidth": 0.6, "alpha": 0.8, **(errorbar_kwargs or {})}
                art = a.errorbar(y[:, j], pred[:, j], yerr=z * std[:, j], label=label, **kw)
            else:
                kw = {"s": 14, "alpha": 0.75, **(scatter_kwargs or {})}
                art = a.scatter(y[:, j], pred[:, j], label=label, **kw)
            self.points_.append(art)
            diag = next((ln for ln in a.get_lines() if ln.get_gid() == _DIAGONAL_GID), None)
            if diag is None:
                diag = a.axline((float(y[0, j]), float(y[0, j])), slope=1, color="k", ls="--", lw=0.8, gid=_DIAGONAL_GID)
            self.diagonals_.append(diag)
            a.set_xlabel(f"true {names[j]}")
            a.set_ylabel(f"predicted {names[j]}")
            a.set_title(names[j])
            a.legend(fontsize="small")
        self.ax_ = np.asarray(axes, dtype=object)
        self.figure_ = fig
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        y_pred: Any,
        *,
        y_std: Any = None,
        target_names: Sequence[str] | None = None,
        name: str | None = None,
        ax: Axes | Sequence[Axes] | np.ndarray | None = None,
        **plot_kwargs: Any,
    ) -> ParameterParityDisplay:
        """Display from true values, predictions and optional standard deviations.

        Parameters
        ----------
        y_true, y_pred : array-like of shape (n_samples,) or (n_samples, n_targets)
        y_std : array-like of the same shape, default=None
            Standard deviations of the predictions (intervals are drawn when given).
        target_names : list of str, default=None
        name : str, default=None
        ax : matplotlib Axes or array-like of Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot` (``confidence``, ``n_cols``...).

        Returns
        -------
        display : ParameterParityDisplay
        """
        disp = cls(y_true=y_true, y_pred=y_pred, y_std=y_std, target_names=target_names, name=name)
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        return_std: bool = False,
        latents: Sequence[int] | None = None,
        target_names: Sequence[str] | None = None,
        name: str | None = None,
        ax: Axes | Sequence[Axes] | np.ndarray | None = None,
        **plot_kwargs: Any,
    ) -> ParameterParityDisplay:
        """Display of a fitted estimator's parameter estimates on ``(X, y)``.

        - A regressor (e.g. a pipeline ending in :class:`~skphys.AttentiveProbeRegressor`):
          ``estimator.predict(X)``; with ``return_std=True``,
          ``estimator.predict(X, return_std=True)`` gives the standard deviations
          (:class:`~sklearn.gaussian_process.GaussianProcessRegressor`,
          :class:`~sklearn.linear_model.BayesianRidge`).
        - A fitted :class:`~skphys.DynamicsVAE`, which learns parameters without labels: the
          latents (``relevant_latents_`` unless ``latents`` is given) are fitted linearly to ``y``
          on ``(X, y)`` and the intervals propagate the latent standard deviations, as in the
          PDE-VAE paper (:func:`skphys.metrics.linear_fit`).

        Parameters
        ----------
        estimator : estimator
            Fitted.
        X : array-like
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        return_std : bool, default=False
            Ask a regressor for standard deviations.
        latents : list of int, default=None
            DynamicsVAE only: latents to fit (``None``: ``relevant_latents_``).
        target_names : list of str, default=None
        name : str, default=None
            ``None``: the estimator's class name (the last step's for a pipeline).
        ax : matplotlib Axes or array-like of Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : ParameterParityDisplay
        """
        if name is None:
            last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
            name = type(last).__name__
        y_std = None
        if hasattr(estimator, "relevant_latents_") and hasattr(estimator, "latent_stats_"):
            mu, sigma = estimator.transform(X, return_std=True)
            cols = list(estimator.relevant_latents_ if latents is None else latents)
            if not cols:
                raise ValueError(
                    f"{type(estimator).__name__} has no relevant latents to fit to y; pass latents= to choose some"
                )
            fit = linear_fit(mu[:, cols], y, sigma[:, cols])
            y_pred, y_std = fit["pred"], fit["pred_std"]
        elif latents is not None:
            raise ValueError("latents= applies to a fitted DynamicsVAE only")
        elif return_std:
            y_pred, y_std = estimator.predict(X, return_std=True)
        else:
            y_pred = estimator.predict(X)
        return cls.from_predictions(y, y_pred, y_std=y_std, target_names=target_names, name=name, ax=ax,
                                    **plot_kwargs)


# --------------------------------------------------------------------------- rollout error
class RolloutErrorDisplay:
    """Rollout RMSE per time step, for one or more rollouts against a baseline (PDE-VAE Fig. 6).

    Parameters
    ----------
    rmse : array-like of shape (n_steps,) or (n_rollouts, n_steps)
        RMSE of each rollout after 1 .. n_steps steps (:func:`skphys.metrics.rollout_rmse`).
    names : list of str, default=None
        One per rollout (``None``: "rollout 0", ...).
    baseline_rmse : array-like of shape (n_steps,), default=None
        RMSE of the baseline, drawn dashed.
    baseline_name : str, default="baseline"
    time : array-like of shape (n_steps,), default=None
        x values (``None``: the step numbers 1 .. n_steps).
    horizon : float, default=None
        x value of the training horizon, drawn as a dotted vertical line (``None``: none).

    Attributes
    ----------
    lines_ : list of matplotlib.lines.Line2D
        One per rollout.
    baseline_line_ : matplotlib.lines.Line2D or None
    horizon_line_ : matplotlib.lines.Line2D or None
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    skphys.metrics.rollout_rmse : The RMSE per step.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skphys.display import RolloutErrorDisplay
    >>> y_true = np.zeros((3, 10, 16, 1))
    >>> y_pred = np.linspace(0, 1, 10)[None, :, None, None] * np.ones_like(y_true)
    >>> disp = RolloutErrorDisplay.from_predictions(
    ...     y_true, {"model": y_pred}, y_baseline=np.full_like(y_true, 0.5), horizon=4)
    >>> disp.lines_[0].get_ydata()[[0, -1]].tolist()
    [0.0, 1.0]
    >>> disp.baseline_line_.get_label()
    'baseline'
    """

    def __init__(
        self,
        *,
        rmse: Any,
        names: Sequence[str] | None = None,
        baseline_rmse: Any = None,
        baseline_name: str = "baseline",
        time: Any = None,
        horizon: float | None = None,
    ) -> None:
        self.rmse = rmse
        self.names = names
        self.baseline_rmse = baseline_rmse
        self.baseline_name = baseline_name
        self.time = time
        self.horizon = horizon

    def plot(
        self,
        ax: Axes | None = None,
        *,
        log_scale: bool = False,
        time_label: str | None = None,
        line_kwargs: dict | None = None,
        baseline_kwargs: dict | None = None,
    ) -> RolloutErrorDisplay:
        """Draw the RMSE curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        log_scale : bool, default=False
            Logarithmic y axis.
        time_label : str, default=None
            x label (``None``: "time step", or "time" when ``time`` was given).
        line_kwargs, baseline_kwargs : dict, default=None
            Passed to :meth:`~matplotlib.axes.Axes.plot` for the rollouts and the baseline.

        Returns
        -------
        display : RolloutErrorDisplay
        """
        rmse = np.asarray(self.rmse, dtype=np.float64)
        if rmse.ndim == 1:
            rmse = rmse[None]
        if rmse.ndim != 2 or rmse.shape[1] == 0:
            raise ValueError(f"rmse must have shape (n_steps,) or (n_rollouts, n_steps), got {np.shape(self.rmse)}")
        n_steps = rmse.shape[1]
        names = _names(self.names, rmse.shape[0], "rollout {}", "names")
        t = np.arange(1, n_steps + 1) if self.time is None else _finite_1d(self.time, "time")
        if len(t) != n_steps:
            raise ValueError(f"time has {len(t)} values, rmse has {n_steps} steps")
        base = None
        if self.baseline_rmse is not None:
            base = np.asarray(self.baseline_rmse, dtype=np.float64).ravel()
            if len(base) != n_steps:
                raise ValueError(f"baseline_rmse has {len(base)} steps, rmse has {n_steps}")
        ax, fig = _single_ax(ax)
        self.lines_ = [ax.plot(t, r, label=nm, **(line_kwargs or {}))[0] for r, nm in zip(rmse, names)]
        self.baseline_line_ = None
        if base is not None:
            kw = {"color": "k", "ls": "--", **(baseline_kwargs or {})}
            self.baseline_line_ = ax.plot(t, base, label=self.baseline_name, **kw)[0]
        self.horizon_line_ = None
        if self.horizon is not None:
            self.horizon_line_ = ax.axvline(float(self.horizon), color="0.4", ls=":", lw=1, label="training horizon")
        if log_scale:
            ax.set_yscale("log")
        ax.set_xlabel(time_label or ("time step" if self.time is None else "time"))
        ax.set_ylabel("RMSE")
        ax.legend(fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @staticmethod
    def _rollouts(y_pred, names):
        if isinstance(y_pred, Mapping):
            if names is not None:
                raise ValueError("give names either as the keys of y_pred or as names=, not both")
            return list(y_pred.values()), [str(k) for k in y_pred]
        if isinstance(y_pred, (list, tuple)):
            return list(y_pred), names
        return [y_pred], names

    @classmethod
    def from_predictions(
        cls,
        y_true: Any,
        y_pred: Any,
        *,
        y_baseline: Any = None,
        names: Sequence[str] | None = None,
        baseline_name: str = "baseline",
        time_axis: int = 1,
        time: Any = None,
        horizon: float | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> RolloutErrorDisplay:
        """Display from true and predicted trajectories.

        Parameters
        ----------
        y_true : array-like of shape (n_samples, n_steps, \\*space, C)
            True states after 1 .. n_steps steps.
        y_pred : array-like like ``y_true``, list of them, or dict ``{name: array}``
            One or more rollouts.
        y_baseline : array-like like ``y_true``, default=None
            The baseline's rollout.
        names : list of str, default=None
            Rollout names (not with a dict ``y_pred``).
        baseline_name : str, default="baseline"
        time_axis : int, default=1
            Axis of the time steps.
        time : array-like of shape (n_steps,), default=None
        horizon : float, default=None
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : RolloutErrorDisplay
        """
        preds, names = cls._rollouts(y_pred, names)
        if not preds:
            raise ValueError("y_pred holds no rollout")
        rmse = np.stack([rollout_rmse(y_true, p, time_axis=time_axis) for p in preds])
        base = None if y_baseline is None else rollout_rmse(y_true, y_baseline, time_axis=time_axis)
        disp = cls(rmse=rmse, names=names, baseline_rmse=base, baseline_name=baseline_name, time=time,
                   horizon=horizon)
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        *,
        n_steps: int | None = None,
        boundary: str | Sequence[str] | None = None,
        fill_value: float | None = None,
        y_baseline: Any = "persistence",
        baseline_name: str | None = None,
        names: Sequence[str] | None = None,
        dt: float | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> RolloutErrorDisplay:
        """Roll a fitted :class:`~skphys.DynamicsVAE` forward from the first frames of ``X``.

        Each trajectory's latents are encoded from the trajectory itself
        (``predict(X[:, 0], n_steps, context=X)``) and the rollout is compared with
        ``X[:, 1 : n_steps + 1]``. The estimator's ``rollout_steps_`` is marked as the training
        horizon.

        Parameters
        ----------
        estimator : DynamicsVAE
            Fitted.
        X : array-like of shape (n_samples, T, \\*space, C)
        n_steps : int, default=None
            Steps to roll out (``None``: ``T - 1``).
        boundary : str or list of str, default=None
            Boundary of :meth:`~skphys.DynamicsVAE.predict`; a list draws one rollout per
            boundary (e.g. ``["constant", "periodic"]`` on data with walls).
        fill_value : float, default=None
            Wall value for ``boundary="constant"``.
        y_baseline : "persistence", array-like or None, default="persistence"
            ``"persistence"``: the initial state held fixed, the simplest baseline; an array of
            shape ``(n_samples, n_steps, *space, C)``: another baseline's rollout (e.g. a
            numerical solver given the true parameters); ``None``: no baseline.
        baseline_name : str, default=None
            ``None``: "persistence (initial state)" or "baseline".
        names : list of str, default=None
            ``None``: the estimator's class name, with the boundary when there are several.
        dt : float, default=None
            Time between frames: the x axis shows time instead of steps.
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : RolloutErrorDisplay
        """
        X = np.asarray(X)
        if X.ndim < 4:
            raise ValueError(f"X must be trajectories (n_samples, T, *space, C), got shape {X.shape}")
        T = X.shape[1]
        n_steps = T - 1 if n_steps is None else n_steps
        if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral) or not 1 <= n_steps <= T - 1:
            raise ValueError(f"n_steps must be an integer in [1, {T - 1}] for trajectories of {T} frames, got {n_steps!r}")
        bounds = [boundary] if boundary is None or isinstance(boundary, str) else list(boundary)
        if not bounds:
            raise ValueError("boundary must be None, a string or a non-empty list of strings")
        label = type(estimator).__name__
        if names is None:
            names = [label if len(bounds) == 1 else f"{label} ({b})" for b in bounds]
        preds = [estimator.predict(X[:, 0], n_steps, context=X, boundary=b, fill_value=fill_value) for b in bounds]
        y_true = X[:, 1 : n_steps + 1]
        if isinstance(y_baseline, str):
            if y_baseline != "persistence":
                raise ValueError(f"y_baseline must be 'persistence', an array or None, got {y_baseline!r}")
            y_baseline = np.broadcast_to(X[:, :1], y_true.shape)
            baseline_name = baseline_name or "persistence (initial state)"
        horizon = getattr(estimator, "rollout_steps_", None)
        time = None
        if dt is not None:
            time = dt * np.arange(1, n_steps + 1)
            horizon = None if horizon is None else dt * horizon
        return cls.from_predictions(
            y_true, preds, y_baseline=y_baseline, names=names, baseline_name=baseline_name or "baseline",
            time=time, horizon=horizon, ax=ax, **plot_kwargs,
        )


# --------------------------------------------------------------------------- label efficiency
class LabelEfficiencyDisplay:
    """Held-out error against the fraction of labelled training data (JEPA paper, Table 2).

    Typically built from a :class:`~sklearn.model_selection.GridSearchCV` over a pipeline's
    ``probe__train_fraction`` (:class:`~skphys.AttentiveProbeRegressor`'s ``train_fraction``),
    possibly crossed with other parameters such as the probe's ``random_state``: the scores of
    every candidate and split with the same fraction are pooled into a mean and a standard
    deviation. Overlay several models by plotting on the same axes with different names.

    Parameters
    ----------
    fractions : array-like of shape (n_fractions,)
        Labelled fractions, in (0, 1].
    scores_mean : array-like of shape (n_fractions,)
    scores_std : array-like of shape (n_fractions,), default=None
        Spread of the scores (drawn as error bars or a band).
    n_scores : array-like of int of shape (n_fractions,), default=None
        Scores pooled per fraction (e.g. seeds x splits).
    score_name : str, default="held-out MSE"
    param_name : str, default="train_fraction"
        Name of the searched parameter (x label).
    name : str, default=None
        Model name for the legend.

    Attributes
    ----------
    errorbar_ : matplotlib.container.ErrorbarContainer or None
        With ``std_display_style="errorbar"``.
    line_ : matplotlib.lines.Line2D
        The mean scores.
    fill_between_ : matplotlib.collections.PolyCollection or None
        With ``std_display_style="fill_between"``.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    See Also
    --------
    sklearn.model_selection.LearningCurveDisplay : Scores against the number of training samples.

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skphys.display import LabelEfficiencyDisplay
    >>> cv_results = {  # as GridSearchCV(scoring="neg_mean_squared_error") reports them
    ...     "param_probe__train_fraction": np.ma.masked_array([0.1, 0.1, 1.0, 1.0]),
    ...     "mean_test_score": np.array([-0.5, -0.7, -0.2, -0.2]),
    ...     "split0_test_score": np.array([-0.5, -0.7, -0.2, -0.2]),
    ... }
    >>> disp = LabelEfficiencyDisplay.from_cv_results(cv_results, name="JEPA")
    >>> disp.scores_mean.tolist(), disp.n_scores.tolist()
    ([0.6, 0.2], [2, 2])
    """

    def __init__(
        self,
        *,
        fractions: Any,
        scores_mean: Any,
        scores_std: Any = None,
        n_scores: Any = None,
        score_name: str = "held-out MSE",
        param_name: str = "train_fraction",
        name: str | None = None,
    ) -> None:
        self.fractions = fractions
        self.scores_mean = scores_mean
        self.scores_std = scores_std
        self.n_scores = n_scores
        self.score_name = score_name
        self.param_name = param_name
        self.name = name

    def plot(
        self,
        ax: Axes | None = None,
        *,
        name: str | None = None,
        std_display_style: str | None = "errorbar",
        log_scale: bool = False,
        line_kwargs: dict | None = None,
    ) -> LabelEfficiencyDisplay:
        """Draw the scores against the labelled fraction (x axis in percent).

        Parameters
        ----------
        ax : matplotlib Axes, default=None
        name : str, default=None
            Legend name (``None``: the ``name`` given at construction).
        std_display_style : {"errorbar", "fill_between"} or None, default="errorbar"
            How ``scores_std`` is drawn (``None``: not drawn).
        log_scale : bool, default=False
            Logarithmic x axis.
        line_kwargs : dict, default=None
            Passed to :meth:`~matplotlib.axes.Axes.errorbar` or :meth:`~matplotlib.axes.Axes.plot`.

        Returns
        -------
        display : LabelEfficiencyDisplay
        """
        from matplotlib.ticker import PercentFormatter

        if std_display_style not in ("errorbar", "fill_between", None):
            raise ValueError(f"std_display_style must be 'errorbar', 'fill_between' or None, got {std_display_style!r}")
        x = _finite_1d(self.fractions, "fractions")
        m = _finite_1d(self.scores_mean, "scores_mean")
        if x.shape != m.shape:
            raise ValueError(f"fractions and scores_mean have shapes {x.shape} and {m.shape}")
        s = None if self.scores_std is None else _finite_1d(self.scores_std, "scores_std")
        if s is not None and s.shape != m.shape:
            raise ValueError(f"scores_std has shape {s.shape}, expected {m.shape}")
        name = self.name if name is None else name
        ax, fig = _single_ax(ax)
        kw = {"marker": "o", "label": name, **(line_kwargs or {})}
        self.errorbar_ = self.fill_between_ = None
        if s is not None and std_display_style == "errorbar":
            self.errorbar_ = ax.errorbar(x, m, yerr=s, capsize=3, **kw)
            self.line_ = self.errorbar_.lines[0]
        else:
            self.line_ = ax.plot(x, m, **kw)[0]
            if s is not None and std_display_style == "fill_between":
                self.fill_between_ = ax.fill_between(x, m - s, m + s, alpha=0.2, color=self.line_.get_color())
        if log_scale:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1, decimals=0))
        ax.set_xlabel(f"labelled fraction ({self.param_name})")
        ax.set_ylabel(self.score_name)
        ax.grid(alpha=0.3)
        if name is not None:
            ax.legend(fontsize="small")
        self.ax_, self.figure_ = ax, fig
        return self

    @classmethod
    def from_cv_results(
        cls,
        cv_results: Mapping[str, Any],
        *,
        param_name: str = "probe__train_fraction",
        negate_score: bool = True,
        score_name: str = "held-out MSE",
        name: str | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> LabelEfficiencyDisplay:
        """Display from a search's ``cv_results_``.

        For each value of ``param_name``, the test scores of every candidate with that value
        (e.g. one per probe seed) and every split are pooled: ``scores_mean`` is their mean,
        ``scores_std`` their sample standard deviation (0 for a single score) and ``n_scores``
        their count. Without per-split scores, ``mean_test_score`` is pooled instead.

        Parameters
        ----------
        cv_results : dict
            ``cv_results_`` of a :class:`~sklearn.model_selection.GridSearchCV` or
            :class:`~sklearn.model_selection.RandomizedSearchCV` (one metric).
        param_name : str, default="probe__train_fraction"
            The searched fraction parameter.
        negate_score : bool, default=True
            Negate the scores: scikit-learn's error scorers such as ``"neg_mean_squared_error"``
            report ``-MSE`` (greater is better). Set False for scores such as ``"r2"``.
        score_name : str, default="held-out MSE"
            y label.
        name : str, default=None
        ax : matplotlib Axes, default=None
        **plot_kwargs
            Passed to :meth:`plot`.

        Returns
        -------
        display : LabelEfficiencyDisplay
        """
        key = f"param_{param_name}"
        if key not in cv_results:
            found = sorted(k[len("param_"):] for k in cv_results if k.startswith("param_"))
            raise ValueError(f"cv_results has no parameter {param_name!r}; searched parameters: {found}")
        if "mean_test_score" not in cv_results:
            raise ValueError(
                "cv_results has no 'mean_test_score' (multi-metric searches name it mean_test_<metric>; "
                "pass a single-metric search)"
            )
        values = np.ma.asarray(cv_results[key])
        splits = sorted((k for k in cv_results if k.startswith("split") and k.endswith("_test_score")),
                        key=lambda k: int(k[len("split"):-len("_test_score")]))
        table = np.stack([np.asarray(cv_results[k], float) for k in splits], 1) if splits else \
            np.asarray(cv_results["mean_test_score"], float)[:, None]
        mask = np.ma.getmaskarray(values)
        fracs = sorted({float(v) for v, masked in zip(values.data, mask) if not masked})
        if not fracs:
            raise ValueError(f"no candidate in cv_results sets {param_name!r}")
        sign = -1.0 if negate_score else 1.0
        mean, std, count = [], [], []
        for f in fracs:
            rows = np.array([not masked and float(v) == f for v, masked in zip(values.data, mask)])
            sc = sign * table[rows].ravel()
            if not np.isfinite(sc).all():
                raise ValueError(f"cv_results holds non-finite scores for {param_name}={f} (failed fits?)")
            mean.append(sc.mean())
            std.append(sc.std(ddof=1) if len(sc) > 1 else 0.0)
            count.append(len(sc))
        disp = cls(fractions=np.array(fracs), scores_mean=np.array(mean), scores_std=np.array(std),
                   n_scores=np.array(count), score_name=score_name, param_name=param_name, name=name)
        return disp.plot(ax=ax, **plot_kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator: Any,
        X: Any,
        y: Any,
        *,
        fractions: Sequence[float] = (0.1, 0.5, 1.0),
        param_name: str = "probe__train_fraction",
        param_grid: Mapping[str, Sequence[Any]] | None = None,
        cv: Any = None,
        scoring: Any = "neg_mean_squared_error",
        n_jobs: int | None = None,
        negate_score: bool = True,
        score_name: str = "held-out MSE",
        name: str | None = None,
        ax: Axes | None = None,
        **plot_kwargs: Any,
    ) -> LabelEfficiencyDisplay:
        """Run a :class:`~sklearn.model_selection.GridSearchCV` over the fractions and display it.

        Parameters
        ----------
        estimator : estimator
            Unfitted, e.g. ``Pipeline([("embed", FrozenEstimator(embedder)), ("probe", probe)])``.
        X, y : array-like
        fractions : sequence of float, default=(0.1, 0.5, 1.0)
        param_name : str, default="probe__train_fraction"
        param_grid : dict, default=None
            Other parameters to cross with the fractions, e.g. ``{"probe__random_state": [0, 1]}``
            (their scores are pooled per fraction).
        cv : int, cross-validation generator or iterable, default=None
            As in :class:`~sklearn.model_selection.GridSearchCV`.
        scoring : str or callable, default="neg_mean_squared_error"
        n_jobs : int, default=None
        negate_score, score_name, name, ax, **plot_kwargs
            As in :meth:`from_cv_results`.

        Returns
        -------
        display : LabelEfficiencyDisplay
            ``search_`` holds the fitted search.
        """
        from sklearn.model_selection import GridSearchCV

        fractions = [float(f) for f in fractions]
        if not fractions or any(not 0 < f <= 1 for f in fractions):
            raise ValueError(f"fractions must be a non-empty list of values in (0, 1], got {fractions}")
        grid = {param_name: fractions, **{k: list(v) for k, v in (param_grid or {}).items()}}
        search = GridSearchCV(estimator, grid, cv=cv, scoring=scoring, refit=False, n_jobs=n_jobs,
                              error_score="raise").fit(X, y)
        if name is None:
            last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
            name = type(last).__name__
        disp = cls.from_cv_results(search.cv_results_, param_name=param_name, negate_score=negate_score,
                                   score_name=score_name, name=name, ax=ax, **plot_kwargs)
        disp.search_ = search
        return disp
