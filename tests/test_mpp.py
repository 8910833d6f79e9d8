"""MPPEmbedder: the residual head starts at persistence, periodic biases wrap, a quick fit on
shear flow predicts the next frame better than persistence."""

import pickle

import numpy as np
import pytest
import torch

from skphys import MPPEmbedder
from skphys.nn.avit import MPPModel, RelativePositionBias, patch_factors


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _tiny(**kw):
    p = dict(n_frames=3, patch_size=4, embed_dim=16, depth=1, n_heads=2, max_epochs=1, batch_size=4,
             device="cpu", random_state=0)
    p.update(kw)
    return MPPEmbedder(**p)


RNG = np.random.default_rng(0)
X = np.cumsum(RNG.normal(size=(6, 5, 8, 8, 2)), axis=1).astype("float32") * 0.3


def test_patch_factors():
    assert patch_factors(16) == (4, 2, 2) and patch_factors(8) == (4, 2) and patch_factors(6) == (2, 3)
    assert np.prod(patch_factors(12)) == 12


def test_periodic_offsets_wrap():
    d = RelativePositionBias.offsets(8, periodic=True)
    assert d[0, 7] == 1 and d[7, 0] == -1 and d.abs().max() == 4
    assert RelativePositionBias.offsets(8, periodic=False)[0, 7] == -7


def test_untrained_model_is_persistence_and_field_subsets_work():
    m = MPPModel(3, patch_size=4, embed_dim=16, depth=1, n_heads=2)
    x = torch.randn(2, 3, 4, 8, 8) * 2 + 1
    torch.testing.assert_close(m(x), x[:, :, -1], atol=1e-5, rtol=1e-5)
    # any subset of the known fields
    assert m(x[:, [0, 2]], fields=[0, 2]).shape == (2, 2, 8, 8)
    assert m.tokens(x[:, [1]], fields=[1]).shape == (2, 4, 16)
    # per-sample normalization: the tokens do not depend on the units of a sample
    torch.testing.assert_close(m.tokens(x), m.tokens(10 * x + 3), atol=1e-3, rtol=1e-3)


def test_shapes_pickle_and_1d():
    est = _tiny().fit(X)
    z = est.transform(X)
    assert z.shape == (6, 4, 16) and z.dtype == np.float32 and est.n_patches_ == 4
    assert est.set_params(pooling="mean").transform(X).shape == (6, 16)
    assert est.predict_next(X).shape == (6, 8, 8, 2)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.transform(X), est.transform(X))
    X1 = X[..., 0, :]
    est1 = _tiny().fit(X1)
    assert est1.transform(X1).shape == (6, 2, 16) and est1.predict_next(X1).shape == (6, 8, 2)


def test_bad_input():
    with pytest.raises(ValueError, match="n_frames \\+ 1"):
        _tiny(n_frames=5).fit(X)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        _tiny(patch_size=3).fit(X)
    with pytest.raises(ValueError, match="n_heads"):
        _tiny(n_heads=3).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        _tiny().fit(np.where(X > 2, np.nan, X))
    est = _tiny().fit(X)
    with pytest.raises(ValueError, match="channels"):
        est.transform(X[..., :1])
    with pytest.raises(ValueError, match="frames"):
        est.transform(X[:, :2])


@pytest.mark.slow
def test_quick_fit_beats_persistence():
    from skphys.datasets import make_shear_flow

    b = make_shear_flow(32, n_points=(16, 16), n_frames=20, t_max=2.0, random_state=0, device="cpu")
    X = b.data
    est = MPPEmbedder(n_frames=4, patch_size=4, embed_dim=32, depth=1, n_heads=4, max_epochs=40, batch_size=8,
                      lr=2e-3, device="cpu", random_state=0).fit(X)
    win = X[:, 8:13]
    pred = est.predict_next(win)
    var = X.var(axis=(0, 1, 2, 3))
    err_model = np.mean((pred - win[:, 4]) ** 2 / var)
    err_persist = np.mean((win[:, 3] - win[:, 4]) ** 2 / var)
    assert err_model < 0.9 * err_persist, (err_model, err_persist)


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
