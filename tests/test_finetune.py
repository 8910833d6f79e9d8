"""FineTunedRegressor: trains exactly what transform computes, for every embedder; works in
Pipeline, GridSearchCV and cross_val_score; the embedder passed in is never modified."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from skphys import (AttentiveProbeRegressor, DISCOEmbedder, DynamicsVAE, FineTunedRegressor, JEPAEmbedder,
                    MPPEmbedder, VideoMAEEmbedder)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


RNG = np.random.default_rng(0)
X = RNG.normal(size=(12, 8, 8, 8, 2)).astype("float32")
Y = X.std(axis=(1, 2, 3, 4))

EMBEDDERS = {
    "jepa": lambda: JEPAEmbedder(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, max_epochs=1,
                                 batch_size=4, device="cpu", random_state=0),
    "videomae": lambda: VideoMAEEmbedder(n_frames=4, patch_size=4, embed_dim=12, depth=1, n_heads=2,
                                         decoder_embed_dim=6, decoder_depth=1, decoder_n_heads=1, max_epochs=1,
                                         batch_size=4, device="cpu", random_state=0),
    "mpp": lambda: MPPEmbedder(n_frames=4, patch_size=4, embed_dim=16, depth=1, n_heads=2, max_epochs=1, batch_size=4,
                               device="cpu", random_state=0),
    "disco": lambda: DISCOEmbedder(n_frames=4, patch_size=4, embed_dim=16, depth=1, n_heads=2, operator_width=4,
                                   operator_groups=2, max_epochs=1, batch_size=4, device="cpu", random_state=0),
}


def test_dynamics_vae_latents_fine_tune():
    rng = np.random.default_rng(1)
    t = np.linspace(0, 1, 40)[:, None]
    xs = np.linspace(0, 2 * np.pi, 36, endpoint=False)[None, :]
    speed = rng.uniform(0.5, 2.0, size=(8, 1, 1))
    X1 = (np.sin(xs[None] - 4 * speed * t[None]) + 0.05 * rng.normal(size=(8, 40, 36)))[..., None].astype("float32")
    vae = DynamicsVAE(encoder_crop=(17, 17), decoder_crop=16, rollout_steps=3, hidden_channels=4,
                      encoder_dilations=(1, 1, 2, 4), max_epochs=1, batch_size=4, device="cpu", random_state=0).fit(X1)
    mu = vae.transform(X1)
    with torch.no_grad():
        z = vae._token_encoder()(torch.from_numpy(X1)).numpy()
    np.testing.assert_allclose(z[:, 0], mu, rtol=1e-4, atol=1e-5)
    ft = _ft(FrozenEstimator(vae)).fit(X1, speed.ravel())
    assert ft.n_frames_ is None and ft.predict(X1).shape == (8,)
    np.testing.assert_array_equal(vae.transform(X1), mu)


def _ft(emb, **kw):
    p = dict(probe=AttentiveProbeRegressor(mlp_ratio=1, n_heads=2), max_epochs=3, batch_size=4, lr=3e-3,
             device="cpu", random_state=0)
    p.update(kw)
    return FineTunedRegressor(emb, **p)


@pytest.mark.parametrize("name", sorted(EMBEDDERS))
def test_fine_tunes_what_transform_computes(name):
    emb = EMBEDDERS[name]().fit(X)
    before = emb.transform(X)
    state = {k: v.clone() for k, v in emb._token_encoder().state_dict().items()}
    with torch.no_grad():
        z = emb._token_encoder()(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(z, before if before.ndim == 3 else before[:, None], rtol=1e-5, atol=1e-5)
    ft = _ft(FrozenEstimator(emb)).fit(X, Y)
    assert ft.predict(X).shape == (12,) and np.isfinite(ft.predict(X)).all()
    # the encoder moved, the embedder passed in did not
    np.testing.assert_array_equal(emb.transform(X), before)
    for k, v in emb._token_encoder().state_dict().items():
        torch.testing.assert_close(v, state[k], rtol=0, atol=0)
    moved = [not torch.equal(a, state[k]) for k, a in ft.encoder_.module.state_dict().items()
             if k in state and a.dtype.is_floating_point and not k.endswith(("mean", "scale"))]
    assert any(moved)
    restored = pickle.loads(pickle.dumps(ft))
    np.testing.assert_array_equal(restored.predict(X), ft.predict(X))


@pytest.mark.parametrize("name", ["mpp", "disco"])
def test_parameters_transform_skips_are_not_trained(name):
    """MPP's output head and DISCO's operator-weight heads are not in the token path: they are
    frozen (DDP under torchrun rejects parameters without a gradient) and keep their pretrained
    values; every parameter on the path still trains."""
    emb = EMBEDDERS[name]().fit(X)
    ref = dict(emb.module_.named_parameters())
    ft = _ft(FrozenEstimator(emb)).fit(X, Y)
    enc = ft.encoder_
    frozen = {k for k, p in enc.module.body.named_parameters() if not p.requires_grad}
    assert frozen and len(frozen) < len(ref)
    for k, p in enc.module.body.named_parameters():
        if k in frozen:
            torch.testing.assert_close(p.detach() * enc.scale, ref[k].detach(), rtol=1e-6, atol=0)
    z = enc(torch.from_numpy(X[:2, :4]))
    grads = torch.autograd.grad(z.sum(), [p for p in enc.parameters() if p.requires_grad], allow_unused=True)
    assert all(g is not None for g in grads)


def test_encoder_lr_scale_slows_the_encoder():
    emb = EMBEDDERS["mpp"]().fit(X)
    ref = {k: v.clone() for k, v in emb.module_.state_dict().items()}

    def drift(scale):
        ft = _ft(FrozenEstimator(emb), encoder_lr_scale=scale).fit(X, Y)
        enc = ft.encoder_
        params = {k: p.detach() * enc.scale for k, p in enc.module.body.named_parameters()}
        return sum(float((params[k] - ref[k]).abs().sum()) for k in params)

    assert drift(0.01) < 0.1 * drift(1.0)


def test_unfitted_embedder_is_pretrained_on_X_and_in_model_selection():
    ft = _ft(EMBEDDERS["mpp"](), max_epochs=2)
    ft.fit(X, Y)
    assert not hasattr(ft.embedder, "module_") and hasattr(ft.embedder_, "module_")
    scores = cross_val_score(_ft(FrozenEstimator(EMBEDDERS["mpp"]().fit(X)), max_epochs=1), X, Y, cv=KFold(3),
                             scoring="neg_mean_squared_error", error_score="raise")
    assert np.all(np.isfinite(scores))
    gs = GridSearchCV(_ft(EMBEDDERS["mpp"](), max_epochs=1), {"encoder_lr_scale": [0.1, 1.0]}, cv=2,
                      error_score="raise").fit(X, Y)
    assert gs.predict(X).shape == (12,)
    # the paper's labelled-fraction protocol
    frozen = FrozenEstimator(EMBEDDERS["mpp"]().fit(X))
    gs = GridSearchCV(_ft(frozen, max_epochs=1), {"train_fraction": [0.5, 1.0]}, cv=KFold(3),
                      error_score="raise").fit(X, Y)
    assert len(gs.best_estimator_.train_indices_) in (6, 12)  # refit on all 12 rows
    assert clone(ft).get_params()["encoder_lr_scale"] == 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="requires y"):
        _ft(EMBEDDERS["mpp"]()).fit(X, None)
    with pytest.raises(ValueError, match="samples"):
        _ft(FrozenEstimator(EMBEDDERS["mpp"]().fit(X))).fit(X, Y[:5])
    with pytest.raises(TypeError, match="cannot be fine-tuned"):
        from skphys._features import SpectralStatsFeatures

        _ft(SpectralStatsFeatures(n_bins=2)).fit(X, Y)
