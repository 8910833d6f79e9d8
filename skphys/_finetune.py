"""End-to-end fine-tuning of any fitted skphys embedder with an attentive probe."""

from __future__ import annotations

import copy
import numbers

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context, clone
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.validation import check_array, check_is_fitted, check_random_state
from torch import nn

from ._base import TRAINING_CONSTRAINTS, TorchEstimatorBase, autocast, check_trajectories, read_rows
from ._sampling import RowSampler
from .nn.attentive_pooler import AttentiveHead

__all__ = ["TokenEncoder", "FineTunedRegressor"]


class TokenEncoder(nn.Module):
    """A fitted embedder's ``transform`` as a trainable module: raw channels-last windows
    ``(N, T, *space, C)`` (``T >= n_frames``) -> tokens ``(N, L, D)``.

    The first ``n_frames`` frames (all of them when ``n_frames`` is None) are standardized per
    channel with the embedder's ``mean`` and ``scale``, moved channels-first and passed to
    ``tokens(body, x)``; a 2-D result (pooled embeddings, latent vectors) becomes one token.
    """

    def __init__(self, body, mean, scale, n_frames, tokens):
        super().__init__()
        self.body = body
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(-1))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32).reshape(-1))
        self.n_frames = None if n_frames is None else int(n_frames)
        self.tokens = tokens

    def forward(self, x):
        x = (x[:, : self.n_frames] - self.mean) / self.scale
        z = self.tokens(self.body, x.movedim(-1, 1))
        return z[:, None] if z.dim() == 2 else z


class _LRScaled(nn.Module):
    """``module`` whose parameters are optimised at ``scale`` times the optimizer's step size.

    The parameters are stored divided by ``scale`` and multiplied back in ``forward`` (through
    :func:`torch.func.functional_call`): Adam's step on the stored value is about ``lr``
    whatever the gradient's size, so the module's own parameters move by about ``scale * lr``.
    (Scaling the gradient instead would do nothing under Adam, which is invariant to it.)
    """

    def __init__(self, module, scale):
        super().__init__()
        self.module = module
        self.scale = float(scale)
        with torch.no_grad():
            for p in self.module.parameters():
                p.div_(self.scale)

    def forward(self, x):
        from torch.func import functional_call

        params = {name: p * self.scale for name, p in self.module.named_parameters()}
        return functional_call(self.module, params, (x,))


def _freeze_unused(encoder, x):
    """Stop training the parameters that ``encoder(x)`` does not use (an embedder's decoder or
    output heads, which ``transform`` skips): they would get no gradient, which DDP rejects under
    torchrun, and AdamW leaves such parameters unchanged anyway."""
    params = [p for p in encoder.parameters() if p.requires_grad]
    mode = encoder.training
    with torch.random.fork_rng():  # the dry run must not move the initialisation's random stream
        encoder.eval()
        z = encoder(torch.from_numpy(x).to(params[0].device))
        grads = torch.autograd.grad(z.float().sum(), params, allow_unused=True)
    encoder.train(mode)
    for p, g in zip(params, grads):
        if g is None:
            p.requires_grad_(False)


def _unwrap(embedder):
    """The embedder inside a :class:`sklearn.frozen.FrozenEstimator`, or the embedder itself."""
    if type(embedder).__name__ == "FrozenEstimator" and hasattr(embedder, "estimator"):
        return embedder.estimator, True
    return embedder, False


def _is_fitted(est):
    try:
        check_is_fitted(est)
        return True
    except Exception:
        return False


class FineTunedRegressor(RegressorMixin, TorchEstimatorBase):
    """Fine-tune a skphys embedder end to end with an attentive probe on labelled trajectories.

    The embedder's encoder (exactly the computation of its ``transform``, input normalization and
    pooling included) and a fresh :class:`skphys.nn.attentive_pooler.AttentiveHead` built from
    ``probe``'s settings are trained together on the standardized (and optionally transformed)
    targets with an MSE loss; the encoder moves at ``encoder_lr_scale`` times the probe's learning
    rate. This is the JEPA paper's "full fine-tuning" row, available for every embedder that
    exposes its token encoder: :class:`~skphys.JEPAEmbedder`, :class:`~skphys.VideoMAEEmbedder`,
    :class:`~skphys.MPPEmbedder`, :class:`~skphys.DISCOEmbedder` and :class:`~skphys.DynamicsVAE`
    (whose latent means, computed from whole trajectories, become one token).

    ``embedder`` may be fitted already (pass it wrapped in :class:`sklearn.frozen.FrozenEstimator`
    to keep its pretraining through ``clone``, as ``GridSearchCV`` and ``cross_val_score`` clone
    their estimators), or unfitted, in which case ``fit`` first pretrains a clone of it on ``X``
    (self-supervised, ``y`` unused) and then fine-tunes. The passed embedder is never modified.

    Parameters
    ----------
    embedder : estimator with ``_token_encoder`` (a skphys embedder), or a FrozenEstimator of one
    probe : AttentiveProbeRegressor or None, default=None
        Supplies the head's ``mlp_ratio`` and ``n_heads`` and the ``target_transform`` and
        ``transform_columns``; None uses ``AttentiveProbeRegressor()``'s defaults. Its training
        settings are not used: the ones below are.
    encoder_lr_scale : float in (0, 1], default=0.1
        The encoder's learning rate relative to ``lr``.
    train_fraction : float in (0, 1], default=1.0
        Fine-tune on a random fraction of the labelled rows drawn with ``random_state`` (the
        paper's labelled-fraction protocol, as :class:`skphys.AttentiveProbeRegressor`'s; an
        unfitted embedder is still pretrained on all of ``X``).
    max_epochs : int, default=20
    batch_size : int, default=16
    lr : float, default=1e-3
    weight_decay : float, default=0.01
    warmup_epochs : int, default=2
        Linear warmup of the cosine schedule (capped at ``max_epochs // 10``).
    device, random_state, verbose, checkpoint_dir, callbacks
        As for the embedders (see :class:`skphys.JEPAEmbedder`).

    Attributes
    ----------
    embedder_ : estimator
        The fitted embedder the encoder was taken from (before fine-tuning).
    encoder_ : torch.nn.Module
        The fine-tuned encoder (raw windows -> tokens).
    head_ : skphys.nn.attentive_pooler.AttentiveHead
    probe_ : AttentiveProbeRegressor
        Unfitted clone of ``probe`` (its target transform is used).
    train_indices_ : ndarray
        Rows of the training set used (``train_fraction``).
    n_frames_ : int or None
        Frames of each trajectory the encoder reads (the embedder's ``n_frames``; None: all).
    n_outputs_ : int
    y_mean_, y_scale_ : ndarray of shape (n_outputs_,)
    history_ : skorch.history.History

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.frozen import FrozenEstimator
    >>> from skphys import FineTunedRegressor, MPPEmbedder
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(8, 5, 8, 8, 1)).astype("float32")
    >>> y = X.std(axis=(1, 2, 3, 4))
    >>> mpp = MPPEmbedder(n_frames=4, patch_size=4, embed_dim=8, depth=1, n_heads=2,
    ...                   max_epochs=1, batch_size=4, device="cpu", random_state=0).fit(X)
    >>> ft = FineTunedRegressor(FrozenEstimator(mpp), max_epochs=2, batch_size=4,
    ...                         device="cpu", random_state=0).fit(X, y)
    >>> ft.predict(X).shape
    (8,)
    """

    _parameter_constraints = {
        "embedder": [HasMethods(["fit", "transform"])],
        "probe": [None, HasMethods(["fit", "predict"])],
        "encoder_lr_scale": [Interval(numbers.Real, 0, 1, closed="right")],
        "train_fraction": [Interval(numbers.Real, 0, 1, closed="right")],
        **TRAINING_CONSTRAINTS,
    }

    def __init__(
        self,
        embedder,
        probe=None,
        encoder_lr_scale=0.1,
        train_fraction=1.0,
        max_epochs=20,
        batch_size=16,
        lr=1e-3,
        weight_decay=0.01,
        warmup_epochs=2,
        device="auto",
        random_state=None,
        verbose=0,
        checkpoint_dir=None,
        callbacks=None,
    ):
        self.embedder = embedder
        self.probe = probe
        self.encoder_lr_scale = encoder_lr_scale
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

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fine-tune the embedder's encoder and an attentive head on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels)
            Trajectories (the first ``n_frames`` frames are used, as by ``transform``).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : FineTunedRegressor
        """
        return self._fit_engine(X, y)

    # ------------------------------------------------------------------ engine hooks
    def _check_fit_input(self, X, y):
        from ._probe import AttentiveProbeRegressor

        who = type(self).__name__
        if y is None:
            raise ValueError(f"{who} requires y to be passed, but the target y is None")
        emb, frozen = _unwrap(self.embedder)
        if not hasattr(emb, "_token_encoder"):
            raise TypeError(
                f"{who}: {type(emb).__name__} cannot be fine-tuned: it does not expose its token encoder "
                "(supported: JEPAEmbedder, VideoMAEEmbedder, MPPEmbedder, DISCOEmbedder, DynamicsVAE)"
            )
        X = check_trajectories(X, estimator=who)
        y = check_array(y, ensure_2d=False, dtype=np.float64, input_name="y")
        if y.ndim not in (1, 2):
            raise ValueError(f"{who}: y must be 1-D or 2-D, got shape {y.shape}")
        if y.shape[0] != X.shape[0]:
            raise ValueError(f"{who}: X has {X.shape[0]} samples but y has {y.shape[0]}; they must match")
        if not _is_fitted(emb):
            if frozen:
                raise ValueError(f"{who}: the FrozenEstimator wraps an unfitted {type(emb).__name__}; fit it first")
            emb = clone(emb).fit(X)
        self.embedder_ = emb
        self.probe_ = clone(self.probe) if self.probe is not None else AttentiveProbeRegressor()
        self._y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        self.probe_._forward_target(y2)  # checks the transform on all rows
        # what the encoder reads, checked the way the embedder's transform checks it
        emb.transform(X[:1])
        enc = emb._token_encoder()
        self.n_frames_ = enc.n_frames
        n = X.shape[0]
        n_train = max(1, int(round(self.train_fraction * n)))
        rs = check_random_state(self.random_state)
        idx = np.sort(rs.permutation(n)[:n_train]) if n_train < n else np.arange(n)
        self.train_indices_ = idx
        if n_train < n:
            X = read_rows(X, idx)
        return X, y2[idx]

    def _setup(self, X, y):
        from ._probe import _largest_divisor_at_most

        self.n_outputs_ = y.shape[1]
        z = self.probe_._forward_target(y)
        self.y_mean_ = z.mean(axis=0)
        scale = z.std(axis=0)
        self.y_scale_ = np.where(scale > 1e-12 * np.maximum(1.0, np.abs(self.y_mean_)), scale, 1.0)
        self.n_features_in_ = int(np.asarray(self.embedder_.transform(X[:1])).shape[-1])
        self.n_heads_ = _largest_divisor_at_most(self.n_features_in_, self.probe_.n_heads)
        self._sample_row = np.ascontiguousarray(read_rows(X, np.arange(1))[:, : self.n_frames_], dtype=np.float32)

    def _build_modules(self):
        enc = copy.deepcopy(self.embedder_._token_encoder()).float()
        _freeze_unused(enc, self.__dict__.pop("_sample_row"))
        head = AttentiveHead(self.n_features_in_, self.n_outputs_, n_heads=self.n_heads_, mlp_ratio=self.probe_.mlp_ratio)
        return {"encoder_": _LRScaled(enc, self.encoder_lr_scale), "head_": head}

    def _make_sampler(self, X, y, device, seed, batch_size):
        frames = np.ascontiguousarray(read_rows(X, np.arange(X.shape[0]))[:, : self.n_frames_])
        zs = ((self.probe_._forward_target(y) - self.y_mean_) / self.y_scale_).astype(np.float32)
        return RowSampler([frames, zs], device, seed, batch_size)

    def _loss(self, modules, batch, ctx):
        xb, yb = batch
        pred = modules["head_"](modules["encoder_"](xb)).float()
        return torch.mean((pred - yb) ** 2), {}

    def _train_options(self):
        return {"schedule": "cosine", "warmup_epochs": min(self.warmup_epochs, self.max_epochs // 10)}

    # ------------------------------------------------------------------ predictions
    def predict_standardized(self, X):
        """Predictions in the transformed, standardized target space, shape (n_samples, n_outputs)."""
        check_is_fitted(self, "head_")
        X = check_trajectories(X, estimator=type(self).__name__, min_frames=self.n_frames_ or 1)
        self.embedder_.transform(X[:1])  # the embedder's own shape checks
        device = self._runtime_device()
        enc = self._module_on("encoder_", device).eval()
        head = self._module_on("head_", device).eval()

        def run(batch):
            xb = torch.from_numpy(np.ascontiguousarray(batch[:, : self.n_frames_])).to(device)
            with autocast(device):
                return head(enc(xb)).float().cpu().numpy()

        return self._map_batches(X, run).astype(np.float64)

    def predict(self, X):
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, T, *space, n_channels)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        z = self.predict_standardized(X) * self.y_scale_ + self.y_mean_
        y = self.probe_._inverse_target(z)
        return y[:, 0] if self._y_1d else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
