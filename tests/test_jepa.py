"""JEPAEmbedder, its ConvNeXt 3-D encoder/predictor and the VICReg loss."""

import pickle

import numpy as np
import pytest
import torch

from skphys import JEPAEmbedder
from skphys.nn.convnext3d import ConvNeXtEncoder3d, JEPAPredictor
from skphys.nn.vicreg import vicreg_loss, vicreg_terms


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = dict(n_frames=4, widths=(4, 8, 8), depths=(1, 1, 1), predictor_width=8, batch_size=2, max_epochs=2)


def _tiny(**kw):
    params = dict(TINY, random_state=0)
    params.update(kw)
    return JEPAEmbedder(**params)


def _data(n=4, t=8, space=(8, 8), c=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, t, *space, c)).astype(np.float32)


# ---------------------------------------------------------------- modules
def test_paper_architecture_sizes():
    enc = ConvNeXtEncoder3d(4)
    pred = JEPAPredictor(128, 256)
    n_enc = sum(p.numel() for p in enc.parameters())
    n_pred = sum(p.numel() for p in pred.parameters())
    assert 2.4e6 < n_enc < 2.55e6  # "about 2.5 M"
    assert 0.78e6 < n_pred < 0.82e6  # "about 0.8 M"
    assert enc.out_frames == 1 and enc.out_channels == 128
    assert enc.stages[-1][0].dwconv.kernel_size == (1, 7, 7)  # 2-D once T is 1
    assert enc.stages[0][0].dwconv.kernel_size == (7, 7, 7)
    with torch.no_grad():
        z = enc(torch.randn(1, 4, 16, 32, 32))
    assert z.shape == (1, 128, 1, 2, 2)  # 224 -> 14 (196 tokens) the same way
    assert pred(z).shape == z.shape


def test_blocks_start_near_identity():
    """Layer scale 1e-6: at initialisation every block changes its input by ~1e-6 relative."""
    torch.manual_seed(0)
    enc = ConvNeXtEncoder3d(2, (4, 8), (2, 2), n_frames=2)
    x = torch.randn(2, 4, 2, 8, 8)
    block = enc.stages[0][0]
    with torch.no_grad():
        assert (block(x) - x).abs().max() < 1e-4


def test_vicreg_terms():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(4000, 8, generator=g) * 2.0  # std 2 > 1, independent columns
    inv, var, cov = vicreg_terms(z, z)
    assert inv == 0 and var == 0
    assert cov < 0.15  # sampling noise only: E ~ 2 * 56 * (4**2 / 4000) / 8 = 0.056
    collapsed = torch.zeros(100, 8)
    inv, var, cov = vicreg_terms(collapsed, collapsed)
    assert var == pytest.approx(1 - np.sqrt(1e-4))  # the hinge at std sqrt(eps)
    corr = torch.randn(4000, 1, generator=g).repeat(1, 8)  # all columns equal: cov = 1 off-diagonal
    _, _, cov = vicreg_terms(corr, corr)
    assert cov == pytest.approx(2 * 7 * 8 / 8, rel=0.1)  # 2 inputs x (8*7 off-diagonal 1^2) / d
    loss, logs = vicreg_loss(collapsed.reshape(4, 25, 8).transpose(1, 2), collapsed.reshape(4, 25, 8).transpose(1, 2))
    assert loss == pytest.approx(40 * (1 - np.sqrt(1e-4)))
    assert set(logs) == {"inv", "var", "cov"}


# ---------------------------------------------------------------- estimator
def test_fit_transform_2d_shapes_and_pooling():
    X = _data()
    jepa = _tiny().fit(X)
    tokens = jepa.transform(X)
    assert tokens.shape == (4, 1 * 2 * 2, 8) and tokens.dtype == np.float32
    pooled = _tiny(pooling="mean").fit(X).transform(X)
    np.testing.assert_allclose(pooled, tokens.mean(axis=1), rtol=1e-5, atol=1e-6)
    assert len(jepa.history_) == 2 and {"loss", "inv", "var", "cov", "lr"} <= set(jepa.history_[0])
    assert jepa.history_[-1]["lr"] == pytest.approx(1e-6)  # cosine down to 1e-6
    assert jepa.transform(_data(t=5, space=(16, 12))).shape == (4, 4 * 3, 8)  # other sizes too


def test_fit_1d_system():
    X = _data(t=8, space=(16,))
    jepa = _tiny().fit(X)
    assert jepa.n_spatial_dims_ == 1
    assert jepa.transform(X).shape == (4, 4, 8)
    with pytest.raises(ValueError, match="dimensions"):
        jepa.transform(_data())  # 2-D data for a 1-D model


def test_normalization_learned_in_fit():
    """Per-channel affine rescaling of the data leaves the learned embedding unchanged."""
    X = _data()
    a = _tiny().fit(X)
    scale = np.array([100.0, 0.01], dtype=np.float32)
    shift = np.array([5.0, -3.0], dtype=np.float32)
    Y = X * scale + shift
    b = _tiny().fit(Y)
    np.testing.assert_allclose(a.mean_, X.mean(axis=(0, 1, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.scale_, X.std(axis=(0, 1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(b.transform(Y), a.transform(X), rtol=1e-3, atol=1e-4)


def test_reproducible_and_pickles():
    X = _data()
    a, b = _tiny().fit(X), _tiny().fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = _tiny(random_state=1).fit(X)
    assert not np.allclose(a.transform(X), c.transform(X))
    restored = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(restored.transform(X), a.transform(X))


def test_pretraining_reduces_loss():
    """On trajectories with structure (travelling waves), VICReg pretraining lowers the loss."""
    rng = np.random.default_rng(0)
    t = np.arange(8)[:, None, None]
    yy, xx = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
    speeds = rng.uniform(0.2, 1.0, size=16)
    X = np.stack([np.sin(2 * np.pi * (xx - s * t) / 8)[..., None] for s in speeds]).astype(np.float32)
    jepa = _tiny(max_epochs=15, batch_size=8, lr=3e-3, warmup_epochs=0).fit(X)
    losses = [h["loss"] for h in jepa.history_]
    assert np.mean(losses[-3:]) < 0.9 * np.mean(losses[:3]), losses


def test_errors():
    X = _data()
    with pytest.raises(ValueError, match="at least 2 \\* n_frames = 8"):
        _tiny().fit(X[:, :7])
    with pytest.raises(ValueError, match="multiple of 4 \\(minimum 4\\)"):
        _tiny(n_frames=2).fit(X)
    with pytest.raises(ValueError, match="multiple of 4"):
        _tiny().fit(_data(space=(10, 8)))  # 10 is not divisible by 2**2
    Xn = X.copy()
    Xn[1, 2, 3, 4, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _tiny().fit(Xn)
    with pytest.raises(ValueError, match="dimensions"):
        _tiny().fit(X[..., 0, 0])
    with pytest.raises(ValueError, match="equal length"):
        _tiny(widths=(4, 8)).fit(X)
    with pytest.raises(ValueError, match="pooling"):
        _tiny(pooling="max").fit(X)
    fitted = _tiny().fit(X)
    with pytest.raises(ValueError, match="1 channels but the estimator was fitted with 2"):
        fitted.transform(X[..., :1])
    with pytest.raises(ValueError, match="at least 4"):
        fitted.transform(X[:, :3])


def test_gpu_named_model_runs_on_cpu():
    """A model whose device names CUDA (as after GPU training) still embeds on a CPU-only host."""
    if torch.cuda.is_available():
        pytest.skip("CUDA available; the CPU fallback is not exercised")
    X = _data()
    jepa = _tiny(device="cpu").fit(X)
    expected = jepa.transform(X)
    restored = pickle.loads(pickle.dumps(jepa.set_params(device="cuda")))
    assert next(restored.encoder_.parameters()).device.type == "cpu"
    with pytest.warns(RuntimeWarning, match="running on the CPU"):
        np.testing.assert_array_equal(restored.transform(X), expected)
