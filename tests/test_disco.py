"""DISCOEmbedder: the operator starts at persistence, the solver budget is honoured and
recorded, a quick fit predicts the next frame better than persistence and its theta-latent
carries the Reynolds number."""

import pickle

import numpy as np
import pytest
import torch

from skphys import DISCOEmbedder
from skphys._disco import _context_normalize
from skphys.nn.disco import DISCOHypernetwork, OperatorUNet, SolverStepsExceeded, integrate


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(**kw):
    p = dict(n_frames=3, patch_size=4, embed_dim=16, depth=1, n_heads=2, operator_width=4, operator_groups=2,
             max_epochs=1, batch_size=4, device="cpu", random_state=0)
    p.update(kw)
    return DISCOEmbedder(**p)


RNG = np.random.default_rng(0)
X = np.cumsum(RNG.normal(size=(6, 5, 8, 8, 2)), axis=1).astype("float32") * 0.3


def test_untrained_operator_is_near_persistence():
    op = OperatorUNet(2, 4, 2)
    hyper = DISCOHypernetwork(2, op, patch_size=4, embed_dim=16, depth=1, n_heads=2)
    ctx = torch.randn(2, 2, 3, 8, 8)
    with torch.no_grad():
        w = hyper.weights(hyper.latent(ctx))
    assert w["out"].abs().max() < 5e-2 * w["inp"].abs().max()  # the out conv starts near zero ...
    u0 = ctx[:1, :, -1]
    with torch.no_grad():
        u1, steps, capped = integrate(op, u0, {k: v[0] for k, v in w.items()})
    assert float((u1 - u0).abs().max()) < 5e-2 * float(u0.abs().max())  # ... so du/dt is small
    assert not capped  # (the step size still starts small and grows tenfold per step)


def test_operator_is_periodic_and_bias_free():
    op = OperatorUNet(1, 4, 2, periodic=True)
    gen = torch.Generator().manual_seed(0)
    w = {k: torch.randn(s, generator=gen) for k, s in op.shapes.items()}
    u = torch.randn(1, 1, 8, 8, generator=gen)
    # a periodic operator commutes with periodic shifts (by 2: the U-Net halves the grid)
    torch.testing.assert_close(op.apply(torch.roll(u, 2, -1), w), torch.roll(op.apply(u, w), 2, -1), atol=1e-5, rtol=1e-5)
    # no biases and affine-free norms: the zero field is a fixed point
    assert torch.count_nonzero(op.apply(torch.zeros(1, 1, 8, 8), w)) == 0
    walls = OperatorUNet(1, 4, 2, periodic=False)
    assert not torch.allclose(walls.apply(torch.roll(u, 2, -1), w), torch.roll(walls.apply(u, w), 2, -1))


def test_solver_budget_is_recorded_and_capped():
    op = OperatorUNet(1, 4, 2)
    gen = torch.Generator().manual_seed(0)
    w = {k: 3 * torch.randn(s, generator=gen) for k, s in op.shapes.items()}
    u = torch.randn(1, 1, 8, 8, generator=gen)
    _, steps, capped = integrate(op, u, w, rtol=1e-6, atol=1e-8, max_steps=1000)
    assert steps > 2 and not capped
    with pytest.raises(SolverStepsExceeded):
        integrate(op, u, w, rtol=1e-6, atol=1e-8, max_steps=2, on_exceed="raise")
    u_cap, steps_cap, capped = integrate(op, u, w, rtol=1e-6, atol=1e-8, max_steps=2)
    assert capped and steps_cap == 2 and torch.isfinite(u_cap).all()
    est = _tiny(max_solver_steps=1, rtol=1e-9, atol=1e-9, max_epochs=2).fit(X)
    for rec in est.history_:
        assert rec["solver_capped"] == 1.0 and rec["solver_steps"] == 1.0


def test_adjoint_and_direct_gradients_agree():
    est = _tiny()
    est._setup(X, None)
    torch.manual_seed(0)
    module = est._build_modules()["module_"]
    win = torch.from_numpy(X[:2]).movedim(-1, 1)
    grads = []
    for adjoint in (True, False):
        module.zero_grad()
        est.set_params(adjoint=adjoint, rtol=1e-7, atol=1e-9)
        loss, _ = est._loss({"module_": module}, win, None)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in module.parameters() if p.grad is not None]))
    # the two gradients of the same loss, to the tolerance of the adjoint solve
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-3, atol=1e-3 * float(grads[1].abs().max()))
    assert float(grads[1].abs().max()) > 0


def test_shapes_pickle_and_1d():
    est = _tiny().fit(X)
    z = est.transform(X)
    assert z.shape == (6, 16) and z.dtype == np.float32
    assert est.set_params(pooling="tokens").transform(X).shape == (6, 1, 16)
    assert est.predict_next(X).shape == (6, 8, 8, 2)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))
    np.testing.assert_allclose(restored.predict_next(X), est.predict_next(X), rtol=1e-6, atol=1e-6)
    X1 = X[..., 0, :]  # (n, T, 8, 2): 1-D
    est1 = _tiny().fit(X1)
    assert est1.transform(X1).shape == (6, 16) and est1.predict_next(X1).shape == (6, 8, 2)
    assert np.isfinite(est1.history_[-1]["loss"])


def test_bad_input():
    with pytest.raises(ValueError, match="n_frames \\+ 1"):
        _tiny(n_frames=5).fit(X)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        _tiny(patch_size=3).fit(X)
    with pytest.raises(ValueError, match="operator_groups"):
        _tiny(operator_width=5).fit(X)
    with pytest.raises(ValueError, match="n_heads"):
        _tiny(n_heads=3).fit(X)
    est = _tiny().fit(X)
    with pytest.raises(ValueError, match="channels"):
        est.transform(X[..., :1])
    with pytest.raises(ValueError, match="spatial size"):
        est.transform(X[:, :, :4, :4])


@pytest.mark.slow
def test_quick_fit_beats_persistence_and_latent_carries_reynolds():
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import cross_val_score

    from skphys.datasets import make_shear_flow

    b = make_shear_flow(32, n_points=(16, 16), n_frames=16, t_max=1.6, random_state=0, device="cpu")
    X, y = b.data, np.log10(b.target[:, 0])
    est = DISCOEmbedder(n_frames=4, patch_size=4, embed_dim=32, depth=1, n_heads=4, operator_width=8,
                        operator_groups=4, max_epochs=8, batch_size=8, lr=5e-4, device="cpu", random_state=0).fit(X)
    assert all(1 <= r["solver_steps"] <= est.max_solver_steps for r in est.history_)
    assert est.history_[-1]["loss"] < 0.6 * est.history_[0]["loss"]
    win = X[:, 8:13]  # windows the fit drew only among others
    pred, steps = est.predict_next(win, return_steps=True)
    assert steps.shape == (32,) and steps.min() >= 1
    var = X.var(axis=(0, 1, 2, 3))
    err_model = np.mean((pred - win[:, 4]) ** 2 / var)
    err_persist = np.mean((win[:, 3] - win[:, 4]) ** 2 / var)
    assert err_model < 0.95 * err_persist, (err_model, err_persist)
    # in the objective's units (context-normalized, per-channel variance-normalized) the gap is large
    w = torch.from_numpy(win).movedim(-1, 1)
    xn, mu, sd = _context_normalize(w, 4)

    def nerr(p):
        pn = (torch.from_numpy(p).movedim(-1, 1) - mu[:, :, 0]) / sd[:, :, 0]
        t = xn[:, :, 4]
        return float((((pn - t) ** 2).mean((2, 3)) / t.var((2, 3), unbiased=False).clamp_min(1e-2)).mean())

    assert nerr(pred) < 0.5 * nerr(win[:, 3])
    Z = est.transform(X)
    mse = -cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 13)), Z, y, cv=4, scoring="neg_mean_squared_error").mean()
    assert mse < 0.5 * y.var(), (mse, y.var())


class _Lazy:
    """A minimal lazy array-like (what skphys.datasets.LazyWindows looks like to an estimator)."""

    def __init__(self, a):
        self.a, self.shape = a, a.shape

    def __len__(self):
        return len(self.a)

    def __getitem__(self, idx):
        return self.a[idx]


def test_lazy_X_gives_the_in_memory_fit():
    a = _tiny(max_epochs=2).fit(X)
    b = _tiny(max_epochs=2).fit(_Lazy(X))
    np.testing.assert_allclose(b.transform(_Lazy(X)), a.transform(X), rtol=1e-5, atol=1e-6)


def test_checkpoint_resume_gives_the_uninterrupted_fit(tmp_path):
    ref = _tiny(max_epochs=3).fit(X)
    _tiny(max_epochs=3, checkpoint_dir=tmp_path).fit(X)
    newest = sorted(tmp_path.glob("epoch-*.pt"))[-1]
    newest.unlink()  # as if killed during the last epoch
    resumed = _tiny(max_epochs=3, checkpoint_dir=tmp_path).fit(X)
    assert len(resumed.history_) == 3
    np.testing.assert_array_equal(resumed.transform(X), ref.transform(X))
